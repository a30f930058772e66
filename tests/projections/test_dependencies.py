"""Start order and cycle finding over `dependsOn`."""

from __future__ import annotations

import pytest

from projections.dependencies import find_cycle, start_order


def test_dependencies_start_before_their_dependents_and_ties_go_by_name() -> None:
    graph = {"web": ("api",), "api": ("db", "cache"), "db": (), "cache": (), "alone": ()}
    order = start_order(graph)
    assert order == ["alone", "cache", "db", "api", "web"]


def test_finds_a_cycle_as_a_closed_path() -> None:
    assert find_cycle({"a": ("b",), "b": ("c",), "c": ("a",), "d": ()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ("a",)}) == ["a", "a"]
    assert find_cycle({"a": ("b",), "b": ()}) is None


def test_start_order_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        start_order({"a": ("b",), "b": ("a",)})
