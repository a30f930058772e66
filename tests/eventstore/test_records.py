"""The JSON spelling every stored event is hashed in."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventstore.records import canonical_json


def spelled(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"b": [1, 2.5, None, True], "a": {"z": 'é"\\\n', "y": {}}},
        [3, "x", {"k": -0.0}],
        "text",
        12,
    ],
)
def test_canonical_json_is_the_sorted_compact_spelling(value: Any) -> None:
    assert canonical_json(value) == spelled(value)


def test_canonical_json_refuses_what_json_cannot_spell() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json({"latency": float("nan")})
    with pytest.raises(TypeError, match="not JSON serializable"):
        canonical_json({"when": object()})
    # a failed call leaves nothing behind that spoils the next one
    shared = {"n": 1}
    assert canonical_json({"a": shared, "b": shared}) == '{"a":{"n":1},"b":{"n":1}}'
