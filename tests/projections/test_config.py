"""The configuration fold: templates, versions and history, what each container holds (no I/O)."""

from __future__ import annotations

from typing import Any

from projections import config, events
from tests.projections.folding import fold_facts

AT = "2026-01-01T00:00:00.000000Z"


def fold(*facts: tuple[str, events.Event]) -> config.ConfigState:
    return fold_facts(config.PROJECTION, facts, AT)


def template(template_id: str = "base") -> tuple[str, events.Event]:
    event = events.ConfigTemplateDefined(
        template_id=template_id, json_schema={"type": "object"}, defaults={"a": 1}
    )
    return config.template_stream_of(template_id), event


def configured(version: int, **extra: Any) -> tuple[str, events.Event]:
    event = events.ServerConfigured(
        server_id="srv", version=version, config={"v": version}, **extra
    )
    return config.stream_of("srv"), event


def applied(version: int, replica: int, container: str) -> tuple[str, events.Event]:
    event = events.ConfigApplied(
        server_id="srv", version=version, replica=replica, container_id=container
    )
    return "server-srv", event


def test_a_template_is_kept_with_where_it_was_defined() -> None:
    state = fold(template("base"))

    kept = state.templates["base"]
    assert (kept.defaults, kept.position, kept.defined_at) == ({"a": 1}, 1, AT)
    assert state.stream_versions == {"template-base": 1}


def test_each_configuration_is_a_version_and_the_last_is_current() -> None:
    state = fold(template(), configured(1, template_id="base"), configured(2))

    server = state.of("srv")
    active = server.active()
    assert active is not None and (active.version, active.config) == (2, {"v": 2})
    assert [(v.version, v.position, v.template_id) for v in server.versions.values()] == [
        (1, 2, "base"),
        (2, 3, None),
    ]
    assert state.next_version("srv") == 3
    assert state.stream_versions == {"template-base": 1, "config-srv": 2}


def test_a_server_never_configured_has_version_zero_and_nothing_active() -> None:
    state = fold()

    assert (state.of("srv").current, state.of("srv").active(), state.next_version("srv")) == (
        0,
        None,
        1,
    )


def test_a_rollback_is_a_new_version_that_names_its_source() -> None:
    state = fold(configured(1), configured(2), configured(3, rolled_back_from=1))

    active = state.of("srv").active()
    assert active is not None and (active.version, active.rolled_back_from) == (3, 1)


def test_records_which_container_holds_which_version() -> None:
    state = fold(configured(1), applied(1, 1, "c1"), applied(1, 2, "c2"), configured(2))
    server = state.of("srv")

    assert server.holds("c1", 1) and server.holds("c2", 1)
    assert not server.holds("c1", 2)  # the new version is not there yet

    server = fold(configured(1), configured(2), applied(2, 1, "c1")).of("srv")
    assert server.holds("c1", 2) and server.applied["c1"].replica == 1


def test_a_replicas_successor_beside_it_does_not_take_its_record() -> None:
    state = fold(configured(1), applied(1, 1, "old"), applied(1, 1, "successor"))

    server = state.of("srv")
    assert server.holds("old", 1) and server.holds("successor", 1)


def test_a_removed_container_is_forgotten_and_a_failure_noted_until_a_success() -> None:
    removed = events.ContainerRemoved(server_id="srv", replica=1, container_id="c1", reason="x")
    failed = events.ConfigApplyFailed(
        server_id="srv", version=1, replica=2, container_id="c2", reason="docker said no"
    )
    state = fold(
        configured(1), applied(1, 1, "c1"), ("server-srv", removed), ("server-srv", failed)
    )

    server = state.of("srv")
    assert server.applied == {} and server.last_error == "docker said no"
    assert (
        fold(configured(1), ("server-srv", failed), applied(1, 2, "c2")).of("srv").last_error
        is None
    )


def test_an_application_of_an_unknown_version_changes_nothing() -> None:
    state = fold(configured(1), applied(7, 1, "c1"))

    assert state.of("srv").applied == {}


def test_a_removed_server_keeps_its_versions_but_no_container_records() -> None:
    removed = events.ServerRemoved(group_id="g", server_id="srv")
    state = fold(configured(1), applied(1, 1, "c1"), ("group-g", removed))

    server = state.of("srv")
    assert server.current == 1 and server.applied == {}
