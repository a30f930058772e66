"""Dependency order among a group's servers (`dependsOn`): start order and cycle finding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a path that starts and ends at the same id, or None."""
    state: dict[str, str] = {}  # "visiting" or "done"
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if state.get(node) == "done":
            return None
        if state.get(node) == "visiting":
            return [*path[path.index(node) :], node]
        state[node] = "visiting"
        path.append(node)
        for dependency in graph.get(node, ()):
            cycle = visit(dependency)
            if cycle:
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def start_order(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """Every id after the ids it depends on; ties in name order. The graph must be acyclic.

    Dependencies outside the graph are ignored (they belong to no one here).
    """
    order: list[str] = []
    placed: set[str] = set()
    remaining = sorted(graph)
    while remaining:
        ready = [n for n in remaining if all(d in placed or d not in graph for d in graph[n])]
        if not ready:
            raise ValueError(f"dependency cycle: {find_cycle(graph)}")
        order.extend(ready)
        placed.update(ready)
        remaining = [n for n in remaining if n not in placed]
    return order
