"""Decisions on groups and servers: validation refuses, events say what should be."""

from __future__ import annotations

from typing import Any

import pytest

from projections import events, groups
from service import errors
from service.handling import commands, decisions


def deploy(group_id: str = "g", *servers: dict[str, Any], **extra: Any) -> commands.DeployGroup:
    body = {"groupId": group_id, "mcpServers": list(servers), **extra}
    return commands.DeployGroup.model_validate(body)


def server(server_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": server_id, "image": "example/mcp:1", **fields}


def after(*produced: events.Event) -> groups.GroupsState:
    state = groups.GroupsState()
    for position, event in enumerate(produced, start=1):
        state = groups.apply(state, event, events.Envelope(position, "group-x", position, "T"))
    return state


def test_a_new_group_is_declared_with_each_server() -> None:
    produced = decisions.deploy_group(
        groups.GroupsState(),
        deploy(
            "g",
            server("db"),
            server("api", dependsOn=["db"], replicas=2),
            resourceLimits={"memoryMb": 128},
            networkConfig={"internal": True},
        ),
    )
    group, db, api = produced
    assert isinstance(group, events.GroupDeclared) and group.internal and group.limits
    assert group.limits.memory_mb == 128
    assert isinstance(api, events.ServerDeclared) and api.spec.depends_on == ("db",)
    assert api.spec.replicas == 2 and isinstance(db, events.ServerDeclared)


def test_redeploying_an_existing_group_declares_only_the_servers() -> None:
    state = after(*decisions.deploy_group(groups.GroupsState(), deploy("g", server("db"))))
    produced = decisions.deploy_group(state, deploy("g", server("api", dependsOn=["db"])))
    assert [type(e).__name__ for e in produced] == ["ServerDeclared"]


@pytest.mark.parametrize(
    ("servers", "field"),
    [
        ([server("a"), server("a")], "mcpServers.1.id"),
        ([server("a", dependsOn=["ghost"])], "mcpServers.0.dependsOn"),
        ([server("a", dependsOn=["b"]), server("b", dependsOn=["a"])], "mcpServers"),
        ([server("a", dependsOn=["a"])], "mcpServers"),
    ],
)
def test_refuses_duplicates_unknown_dependencies_and_cycles(
    servers: list[dict[str, Any]], field: str
) -> None:
    with pytest.raises(errors.ValidationFailedError) as refused:
        decisions.deploy_group(groups.GroupsState(), deploy("g", *servers))
    assert field in [d["field"] for d in refused.value.details]


def test_refuses_a_server_id_that_belongs_to_another_group() -> None:
    state = after(*decisions.deploy_group(groups.GroupsState(), deploy("one", server("db"))))
    with pytest.raises(errors.ConflictError) as refused:
        decisions.deploy_group(state, deploy("two", server("db")))
    assert refused.value.code == "id_in_use"
    assert refused.value.details == [{"mcpServerId": "db", "groupId": "one"}]


def test_refuses_to_flip_an_existing_groups_network() -> None:
    state = after(*decisions.deploy_group(groups.GroupsState(), deploy("g", server("db"))))
    with pytest.raises(errors.ConflictError):
        decisions.deploy_group(state, deploy("g", server("db"), networkConfig={"internal": True}))


def test_scale_remove_and_restart_need_known_ids_and_restart_in_dependency_order() -> None:
    state = after(
        *decisions.deploy_group(
            groups.GroupsState(), deploy("g", server("web", dependsOn=["api"]), server("api"))
        )
    )
    scaled = decisions.scale_server(state, commands.ScaleServer(mcp_server_id="api", replicas=3))
    assert (scaled.group_id, scaled.replicas) == ("g", 3)
    assert decisions.restart_group(state, commands.RestartGroup(group_id="g")).order == (
        "api",
        "web",
    )
    with pytest.raises(errors.NotFoundError):
        decisions.scale_server(state, commands.ScaleServer(mcp_server_id="nope", replicas=1))
    with pytest.raises(errors.NotFoundError):
        decisions.remove_group(state, commands.RemoveGroup(group_id="nope"))
    with pytest.raises(errors.ConflictError):
        decisions.create_group(state, commands.CreateGroup(id="g"))


def test_the_wire_spec_refuses_bad_fields() -> None:
    bad = [
        {"groupId": "Bad Id", "mcpServers": [server("a")]},
        {"groupId": "g", "mcpServers": []},
        {"groupId": "g", "mcpServers": [server("a", replicas=21)]},
        {"groupId": "g", "mcpServers": [server("a", env={"BAD NAME": "x"})]},
        {"groupId": "g", "mcpServers": [server("a", image="has space")]},
        {"groupId": "g", "mcpServers": [server("a", surprise=1)]},
        {
            "groupId": "g",
            "mcpServers": [server("a", credentialRequirements=[{"name": "../x", "mode": "file"}])],
        },
    ]
    for body in bad:
        with pytest.raises(ValueError):
            commands.DeployGroup.model_validate(body)


def test_a_stdio_server_is_declared_with_its_transport_and_probed_only_through_dtma() -> None:
    _, declared = decisions.deploy_group(
        groups.GroupsState(), deploy("g", server("a", transport="stdio"))
    )
    assert isinstance(declared, events.ServerDeclared) and declared.spec.transport == "stdio"
    for check in ("http", "tcp"):
        with pytest.raises(ValueError, match="probed with `mcp`"):
            deploy("g", server("a", transport="stdio", healthCheck={"type": check}))
    deploy("g", server("a", transport="stdio", healthCheck={"type": "none"}))


def test_publish_port_is_carried_into_the_spec_and_left_to_the_reach_when_absent() -> None:
    produced = decisions.deploy_group(
        groups.GroupsState(),
        deploy("g", server("a"), server("b", publishPort=True), server("c", publishPort=False)),
    )
    published = [e.spec.publish_port for e in produced if isinstance(e, events.ServerDeclared)]
    assert published == [None, True, False]
