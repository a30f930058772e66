"""A template's regular expressions cannot stall the service: run by RE2, in linear time, and a
pattern RE2 cannot run is refused when the template is defined."""

from __future__ import annotations

import time
from typing import Any

import pytest

from projections import config
from service import errors
from service.config import decisions as decide
from service.handling import commands
from tests.service.config.test_decisions import desired, with_template

EVIL = "^(a+)+$"
# Python's `re` takes about 5 s for 28 characters of this, twice as long for each one more.
STALLING = "a" * 28 + "!"
WITHIN_S = 0.5


def template(schema: dict[str, Any], **wire: Any) -> commands.DefineTemplate:
    body = {"id": "evil", "schema": schema, **wire}
    return commands.DefineTemplate.model_validate(body, by_alias=True, by_name=False)


def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    try:
        outcome = call()
    except errors.ServiceError as exc:
        outcome = exc
    return time.perf_counter() - started, outcome


def test_a_catastrophic_pattern_in_the_defaults_is_checked_at_once() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": EVIL}}}

    took, refused = timed(
        lambda: decide.define_template(
            config.ConfigState(), template(schema, defaults={"name": STALLING})
        )
    )

    assert took < WITHIN_S
    assert isinstance(refused, errors.ValidationFailedError)
    assert refused.details[0]["field"] == "defaults.name"


@pytest.mark.parametrize(
    ("keyword", "refused"),
    [("patternProperties", False), ("additionalProperties", True), ("propertyNames", True)],
)
def test_a_catastrophic_pattern_on_keys_is_checked_at_once(keyword: str, refused: bool) -> None:
    schemas: dict[str, dict[str, Any]] = {
        "patternProperties": {"patternProperties": {EVIL: {"type": "integer"}}},
        "additionalProperties": {
            "patternProperties": {EVIL: {}},
            "additionalProperties": False,
        },
        "propertyNames": {"propertyNames": {"pattern": EVIL}},
    }
    state = with_template(template({"type": "object", **schemas[keyword]}))
    wire = {"templateId": "evil", "config": {STALLING: "x"}}

    took, outcome = timed(
        lambda: decide.configure_server(
            state, desired("s"), "s", commands.ConfigureServer.model_validate(wire), None
        )
    )

    assert took < WITHIN_S
    assert isinstance(outcome, errors.ValidationFailedError) is refused, outcome


def test_matching_keeps_its_meaning() -> None:
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string", "pattern": "^[a-z]+-[0-9]{2}$"}},
        "patternProperties": {"^x-": {"type": "integer"}},
        "additionalProperties": False,
    }
    state = with_template(template(schema))

    def configured(wire: dict[str, Any]) -> Any:
        command = commands.ConfigureServer.model_validate({"templateId": "evil", "config": wire})
        return timed(lambda: decide.configure_server(state, desired("s"), "s", command, None))[1]

    assert not isinstance(configured({"id": "ab-12", "x-count": 3}), errors.ServiceError)
    fields = [d["field"] for d in configured({"id": "AB-1", "x-count": "3", "other": 1}).details]
    assert fields == ["config", "config.id", "config.x-count"]


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"properties": {"a": {"pattern": "(a)\\1"}}}, "schema.properties.a.pattern"),
        ({"patternProperties": {"^(?=x)": {}}}, "schema.patternProperties.^(?=x)"),
        (
            {"patternProperties": {"^x": {}}, "unevaluatedProperties": False},
            "schema.unevaluatedProperties",
        ),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_when_defined(
    schema: dict[str, Any], field: str
) -> None:
    with pytest.raises(errors.ValidationFailedError) as refused:
        decide.define_template(config.ConfigState(), template(schema))

    assert refused.value.code == "invalid_schema"
    assert field in [d["field"] for d in refused.value.details]
