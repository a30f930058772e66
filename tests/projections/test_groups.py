"""The desired-state fold: groups, servers, replicas, generations, stream versions."""

from __future__ import annotations

from projections import events, groups, specs
from tests.projections.folding import fold_facts


def fold(*recorded: tuple[events.Event, str]) -> groups.GroupsState:
    return fold_facts(groups.PROJECTION, ((stream, event) for event, stream in recorded), "T")


def declared(server_id: str, **spec: object) -> tuple[events.Event, str]:
    full = specs.ServerSpec(id=server_id, image="img:1", **spec)  # type: ignore[arg-type]
    return events.ServerDeclared(group_id="g", spec=full), "group-g"


GROUP = (
    events.GroupDeclared(group_id="g", name="G", limits=specs.Limits(memory_mb=256)),
    "group-g",
)


def test_a_deploy_declares_a_group_with_its_servers_in_order() -> None:
    state = fold(GROUP, declared("db"), declared("api", depends_on=("db",), replicas=2))

    assert state.groups["g"].servers == ("db", "api")
    assert state.servers["api"].replicas == 2 and state.servers["api"].generation == 3
    assert state.stream_versions == {"group-g": 3}
    assert state.group_of("db") == "g" and state.group_of("nope") is None


def test_limits_fall_back_from_server_to_group_to_the_default_pids() -> None:
    state = fold(GROUP, declared("a", limits=specs.Limits(cpus=0.5)), declared("b"))

    assert state.limits_of("a") == specs.Limits(memory_mb=256, cpus=0.5, pids=512)
    assert state.limits_of("b") == specs.Limits(memory_mb=256, pids=512)


def test_scale_restart_and_removal() -> None:
    state = fold(
        GROUP,
        declared("db"),
        declared("api"),
        (events.ReplicasScaled(group_id="g", server_id="api", replicas=3), "group-g"),
        (events.GroupRestartRequested(group_id="g", order=("db", "api")), "group-g"),
        (events.ServerRemoved(group_id="g", server_id="db"), "group-g"),
    )
    assert state.servers["api"].replicas == 3 and state.servers["api"].generation == 5
    assert state.servers["api"].declared_generation == 3  # a restart keeps the image pin
    assert "db" not in state.servers and state.groups["g"].servers == ("api",)

    gone = groups.apply(
        state, events.GroupRemoved(group_id="g"), events.Envelope(7, "group-g", 7, "T")
    )
    assert gone.groups == {} and gone.servers == {}
    assert gone.stream_versions == {"group-g": 7}


def test_a_redeclared_group_keeps_its_servers() -> None:
    state = fold(GROUP, declared("db"), (events.GroupDeclared(group_id="g", name="G2"), "group-g"))
    assert state.groups["g"].servers == ("db",) and state.groups["g"].name == "G2"


def test_a_redeploy_of_the_same_spec_is_a_new_declared_generation() -> None:
    state = fold(GROUP, declared("api"), declared("api"))
    assert state.servers["api"].generation == state.servers["api"].declared_generation == 3
