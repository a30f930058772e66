"""Pure configuration decisions: merging, environment overrides, JSON Schema validation with one
detail per failing path, template idempotency and conflicts, rollback."""

from __future__ import annotations

from typing import Any

import pytest

from projections import config, events, groups, specs
from service import errors
from service.config import decisions as decide
from service.handling import commands, decisions

AT = "2026-01-01T00:00:00.000000Z"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "logLevel": {"enum": ["debug", "info", "warn"]},
        "limits": {
            "type": "object",
            "properties": {"maxTokens": {"type": "integer", "maximum": 8192}},
            "required": ["maxTokens"],
        },
        "endpoint": {"type": "string"},
    },
    "required": ["endpoint"],
    "additionalProperties": False,
}
DEFAULTS = {"logLevel": "info", "limits": {"maxTokens": 1024}}
ENVIRONMENTS = {"production": {"logLevel": "warn", "limits": {"maxTokens": 4096}}}


def template_command(**wire: Any) -> commands.DefineTemplate:
    body = {"id": "search", "schema": SCHEMA, "defaults": DEFAULTS, "environments": ENVIRONMENTS}
    return commands.DefineTemplate.model_validate({**body, **wire}, by_alias=True, by_name=False)


def with_template(command: commands.DefineTemplate | None = None) -> config.ConfigState:
    event = decide.define_template(config.ConfigState(), command or template_command())
    assert event is not None
    stream = config.template_stream_of(event.template_id)
    return config.apply(config.ConfigState(), event, events.Envelope(1, stream, 1, AT))


def desired(*server_ids: str) -> groups.GroupsState:
    servers = {
        s: groups.ServerState(
            group_id="g", spec=specs.ServerSpec(id=s, image="i"), replicas=1, generation=1
        )
        for s in server_ids
    }
    return groups.GroupsState(servers=servers)


def configure(**wire: Any) -> commands.ConfigureServer:
    return commands.ConfigureServer.model_validate(wire, by_alias=True, by_name=False)


def applied(state: config.ConfigState, event: events.ServerConfigured) -> config.ConfigState:
    position = 10 + event.version
    stream = config.stream_of(event.server_id)
    return config.apply(state, event, events.Envelope(position, stream, event.version, AT))


def test_deep_merge_merges_objects_at_any_depth_and_replaces_everything_else() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1, "e": {"f": 1}}
    override = {"a": {"c": [3], "g": None}, "e": 2}

    assert decide.deep_merge(base, override) == {"a": {"b": 1, "c": [3], "g": None}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1, "e": {"f": 1}}  # left alone


def test_effective_is_defaults_then_the_environments_overrides_then_the_given_config() -> None:
    template = with_template().templates["search"]
    given = {"endpoint": "https://x", "limits": {"maxTokens": 2048}}

    assert decide.effective(template, None, given) == {
        "logLevel": "info",
        "limits": {"maxTokens": 2048},
        "endpoint": "https://x",
    }
    assert decide.effective(template, "production", {"endpoint": "https://x"}) == {
        "logLevel": "warn",
        "limits": {"maxTokens": 4096},
        "endpoint": "https://x",
    }
    assert decide.effective(template, "staging", {}) == DEFAULTS  # no overrides for it


def test_a_template_is_defined_once_and_the_same_body_again_decides_nothing() -> None:
    state = with_template()

    assert decide.define_template(state, template_command()) is None
    with pytest.raises(errors.ConflictError) as refused:
        decide.define_template(state, template_command(defaults={}))
    assert refused.value.code == "id_in_use"


def test_refuses_a_schema_that_is_not_json_schema_naming_each_bad_keyword() -> None:
    bad = {"type": "objekt", "properties": {"a": {"minimum": "zero"}}, "pattern": "(["}

    with pytest.raises(errors.ValidationFailedError) as refused:
        decide.define_template(config.ConfigState(), template_command(schema=bad, defaults={}))

    assert refused.value.code == "invalid_schema"
    fields = sorted(d["field"] for d in refused.value.details)
    assert fields == ["schema.pattern", "schema.properties.a.minimum", "schema.type"]


def test_refuses_an_unknown_dialect_and_follows_a_known_one() -> None:
    unknown = {"$schema": "https://example.com/my-dialect", "type": "object"}
    with pytest.raises(errors.ValidationFailedError) as refused:
        decide.define_template(config.ConfigState(), template_command(schema=unknown, defaults={}))
    assert refused.value.details[0]["field"] == "schema.$schema"

    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    command = template_command(schema=draft7, defaults={}, environments={})
    assert decide.define_template(config.ConfigState(), command) is not None


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}},
        {"$ref": "#"},
    ],
    ids=["remote-ref", "ref-cycle"],
)
def test_refuses_a_schema_whose_refs_cannot_be_followed(schema: dict[str, Any]) -> None:
    command = template_command(schema=schema, defaults={"a": 1}, environments={})

    with pytest.raises(errors.ValidationFailedError) as refused:
        decide.define_template(config.ConfigState(), command)

    assert refused.value.code == "invalid_schema"


def test_defaults_may_leave_out_required_properties_but_break_no_other_rule() -> None:
    with pytest.raises(errors.ValidationFailedError) as refused:
        decide.define_template(
            config.ConfigState(),
            template_command(
                defaults={"limits": {"maxTokens": 99999}},
                environments={"dev": {"logLevel": "trace"}},
            ),
        )

    assert [(d["field"], d["pointer"]) for d in refused.value.details] == [
        ("defaults.limits.maxTokens", "/limits/maxTokens"),
        ("environments.dev.limits.maxTokens", "/limits/maxTokens"),
        ("environments.dev.logLevel", "/logLevel"),
    ]


def test_a_configuration_is_validated_with_one_detail_per_failing_path() -> None:
    command = configure(
        templateId="search",
        config={"limits": {"maxTokens": "many"}, "logLevel": "loud", "extra": 1},
    )

    with pytest.raises(errors.ValidationFailedError) as refused:
        decide.configure_server(with_template(), desired("srv"), "srv", command, None)

    details = refused.value.details
    assert [(d["field"], d["pointer"], d["type"]) for d in details] == [
        ("config", "", "required"),
        ("config", "", "additionalProperties"),
        ("config.limits.maxTokens", "/limits/maxTokens", "type"),
        ("config.logLevel", "/logLevel", "enum"),
    ]
    assert "'endpoint' is a required property" in details[0]["message"]
    assert "'extra' was unexpected" in details[1]["message"]


def test_a_configuration_takes_the_services_environment_and_records_it() -> None:
    command = configure(templateId="search", config={"endpoint": "https://x"})

    event = decide.configure_server(with_template(), desired("srv"), "srv", command, "production")

    assert event is not None
    assert (event.version, event.template_id, event.environment) == (1, "search", "production")
    assert event.config["limits"] == {"maxTokens": 4096} and event.given == {
        "endpoint": "https://x"
    }


def test_a_later_configuration_keeps_the_template_unless_told_otherwise() -> None:
    state = with_template()
    first = decide.configure_server(
        state, desired("srv"), "srv", configure(templateId="search", config={"endpoint": "a"}), None
    )
    assert first is not None
    state = applied(state, first)

    with pytest.raises(errors.ValidationFailedError):  # still held to the template's schema
        decide.configure_server(state, desired("srv"), "srv", configure(config={"x": 1}), None)
    detached = decide.configure_server(
        state, desired("srv"), "srv", configure(templateId=None, config={"x": 1}), None
    )
    assert detached is not None
    assert (detached.version, detached.template_id, detached.config) == (2, None, {"x": 1})


def test_the_same_effective_configuration_again_decides_nothing() -> None:
    state = with_template()
    command = configure(templateId="search", config={"endpoint": "a"})
    first = decide.configure_server(state, desired("srv"), "srv", command, None)
    assert first is not None

    again = decide.configure_server(
        applied(state, first), desired("srv"), "srv", configure(config={"endpoint": "a"}), None
    )

    assert again is None


def test_refuses_an_unknown_server_with_404_and_an_unknown_template_with_422() -> None:
    with pytest.raises(errors.NotFoundError):
        decide.configure_server(config.ConfigState(), desired(), "srv", configure(config={}), None)
    with pytest.raises(errors.ValidationFailedError) as refused:
        decide.configure_server(
            config.ConfigState(), desired("srv"), "srv", configure(templateId="no", config={}), None
        )
    assert refused.value.code == "unknown_template"


def test_without_a_template_any_object_is_accepted_as_it_is() -> None:
    event = decide.configure_server(
        config.ConfigState(), desired("srv"), "srv", configure(config={"any": [1]}), "production"
    )

    assert event is not None and (event.config, event.environment) == ({"any": [1]}, None)


def test_a_rollback_copies_an_old_version_as_a_new_one() -> None:
    state = with_template()
    for endpoint in ("one", "two"):
        command = configure(templateId="search", config={"endpoint": endpoint})
        event = decide.configure_server(state, desired("srv"), "srv", command, "production")
        assert event is not None
        state = applied(state, event)

    rolled = decide.rollback_config(
        state, desired("srv"), "srv", commands.RollbackConfig(version=1)
    )

    assert (rolled.version, rolled.rolled_back_from, rolled.config["endpoint"]) == (3, 1, "one")
    assert (rolled.template_id, rolled.environment) == ("search", "production")
    with pytest.raises(errors.ValidationFailedError) as refused:
        decide.rollback_config(state, desired("srv"), "srv", commands.RollbackConfig(version=9))
    assert refused.value.code == "unknown_config_version"


def test_json_pointers_escape_tilde_and_slash() -> None:
    assert decide.pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"


def test_a_reload_signal_must_be_one_a_process_can_catch_and_reaches_the_spec() -> None:
    wire = {"id": "srv", "image": "example/srv:1", "reloadSignal": "SIGHUP"}

    spec = decisions.server_spec(commands.McpServerSpec.model_validate(wire))

    assert spec.reload_signal == "SIGHUP"
    for refused in ("SIGKILL", "SIGSTOP", "HUP", "sighup"):
        with pytest.raises(ValueError):
            commands.McpServerSpec.model_validate({**wire, "reloadSignal": refused})
