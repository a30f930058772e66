"""The legacy tools' vocabulary: ids from names, the decisions, and the backend's status words."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from projections import containers, events, groups
from service import errors
from service.handling import commands
from service.legacy import decisions as decide


def create(name: str = "my-tool", **config: Any) -> decide.CreateTool:
    body = {
        "dockerImageUrl": "example/tool:1",
        "instanceNameOnToolbox": name,
        "accountToolInstanceId": "ati-1",
        **({"baseConfigOverrideJson": config} if config else {}),
    }
    return decide.CreateTool.model_validate(body, by_alias=True, by_name=False)


def after(*produced: events.Event) -> groups.GroupsState:
    state = groups.GroupsState()
    for position, event in enumerate(produced, start=1):
        state = groups.apply(state, event, events.Envelope(position, "group-legacy", position, "T"))
    return state


def with_tools(*created: decide.CreateTool) -> groups.GroupsState:
    produced: list[events.Event] = []
    for command in created:
        produced += decide.create_tool(after(*produced), command)
    return after(*produced)


def test_a_safe_name_is_its_own_id_and_an_unsafe_one_gets_a_hash_of_the_original() -> None:
    assert decide.tool_id("my-tool") == "tool-my-tool"
    spaced = decide.tool_id("My Tool")
    assert re.fullmatch(r"tool-my-tool-[0-9a-f]{6}", spaced)
    assert spaced != decide.tool_id("my tool") and spaced == decide.tool_id("My Tool")


@pytest.mark.parametrize("name", ["My Tool 1", "x" * 255, "!!!", "Ünïcode ☃ tool", "-a-"])
def test_every_name_gives_a_valid_id(name: str) -> None:
    assert re.fullmatch(commands.ID_PATTERN, decide.tool_id(name))


def test_the_first_tool_declares_the_legacy_group_then_only_servers() -> None:
    first = decide.create_tool(groups.GroupsState(), create("a"))
    assert [type(e).__name__ for e in first] == ["GroupDeclared", "ServerDeclared"]
    second = decide.create_tool(after(*first), create("b"))
    assert [type(e).__name__ for e in second] == ["ServerDeclared"]


def test_a_tool_is_a_server_with_one_replica_no_probe_its_env_ports_and_original_name() -> None:
    command = create(
        "My Tool",
        Env=["LOG_LEVEL=debug", "URL=http://x/?a=b"],
        HostConfig={"PortBindings": {"8080/tcp": [{"HostPort": "18080"}], "9090": [{}]}},
    )
    [_group, declared] = decide.create_tool(groups.GroupsState(), command)
    assert isinstance(declared, events.ServerDeclared)
    spec = declared.spec
    assert spec.id == decide.tool_id("My Tool") and spec.replicas == 1
    assert spec.health_check.type == "none" and spec.port == 8080
    assert spec.env == {"LOG_LEVEL": "debug", "URL": "http://x/?a=b"}
    assert spec.host_ports == ((8080, 18080),)
    assert spec.legacy is not None and spec.legacy.instance_name == "My Tool"
    assert spec.labels["dtma.tool.name"] == "My Tool"


def test_a_tool_without_ports_keeps_the_default_mcp_port() -> None:
    [_group, declared] = decide.create_tool(groups.GroupsState(), create())
    assert isinstance(declared, events.ServerDeclared) and declared.spec.port == 8000


def test_unknown_keys_from_the_old_backend_are_ignored() -> None:
    body = {
        "dockerImageUrl": "example/tool:1",
        "instanceNameOnToolbox": "t",
        "accountToolInstanceId": "a",
        "somethingNew": 1,
        "baseConfigOverrideJson": {"Tty": True, "HostConfig": {"Binds": []}},
    }
    assert decide.CreateTool.model_validate(body).instance_name_on_toolbox == "t"


@pytest.mark.parametrize(
    "config",
    [
        {"Env": ["NOEQUALS"]},
        {"Env": ["1BAD=x"]},
        {"HostConfig": {"PortBindings": {"8080/udp": [{"HostPort": "1"}]}}},
        {"HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": "70000"}]}}},
        {"HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": "http"}]}}},
        {
            "HostConfig": {
                "PortBindings": {"1/tcp": [{"HostPort": "9"}], "2/tcp": [{"HostPort": "9"}]}
            }
        },
    ],
)
def test_malformed_base_config_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        create("t", **config)


@pytest.mark.parametrize("name", ["a/b", "tab\there", "   ", "..", "x" * 256])
def test_names_that_cannot_be_addressed_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        create(name)


def test_a_name_in_use_is_a_conflict() -> None:
    state = with_tools(create("My Tool"))
    with pytest.raises(errors.ConflictError, match="already exists"):
        decide.create_tool(state, create("My Tool"))


def test_a_name_whose_id_another_server_has_is_a_conflict() -> None:
    other = events.ServerDeclared(
        group_id="g", spec=decide.tool_spec(create("x")).model_copy(update={"legacy": None})
    )
    state = after(events.GroupDeclared(group_id="g", name="g"), other)
    with pytest.raises(errors.ConflictError, match="in use"):
        decide.create_tool(state, create("x"))


def test_a_host_port_of_another_tool_is_a_conflict() -> None:
    ports = {"PortBindings": {"8080/tcp": [{"HostPort": "18080"}]}}
    state = with_tools(create("a", HostConfig=ports))
    with pytest.raises(errors.ConflictError) as refused:
        decide.create_tool(state, create("b", HostConfig=ports))
    assert refused.value.code == "host_port_in_use"


def test_removing_and_scaling_address_the_tool_by_its_original_name() -> None:
    state = with_tools(create("My Tool"))
    removed = decide.remove_tool(state, decide.RemoveTool(name="My Tool"))
    assert removed.server_id == decide.tool_id("My Tool") and removed.group_id == "legacy"
    stopped = decide.scale_tool(state, decide.ScaleTool(name="My Tool", replicas=0))
    assert stopped.replicas == 0 and stopped.server_id == removed.server_id
    with pytest.raises(errors.NotFoundError):
        decide.remove_tool(state, decide.RemoveTool(name="my-tool-unknown"))


def instance(state: containers.State) -> containers.Instance:
    return containers.Instance(replica=1, container_id="c", container_name="n", state=state)


@pytest.mark.parametrize(
    ("replicas", "states", "word"),
    [
        (1, [], "pending"),
        (1, ["created"], "starting"),
        (1, ["running"], "running"),
        (1, ["failed"], "error"),
        (1, ["exited"], "error"),
        (0, ["running"], "stopping"),
        (0, [], "stopped"),
        (0, ["failed"], "stopped"),
    ],
)
def test_status_words_are_the_backends(
    replicas: int, states: list[containers.State], word: str
) -> None:
    server = with_tools(create("t")).servers[decide.tool_id("t")]
    server = server.model_copy(update={"replicas": replicas})
    assert decide.tool_status(server, [instance(s) for s in states]) == word
