"""Whatever a request says, the container it makes stays contained: every field of every command
that reaches a HostConfig, walked with hostile values through the real decisions, the desired
state's fold and the starter's container specs, down to Docker's create body."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from projections import events, groups
from service import errors
from service.container_policy import DEFAULT_CAPABILITIES, DEFAULT_POLICY, ContainerPolicy
from service.docker.objects import LOOPBACK, SECRETS_DIR, container_config
from service.handling import commands, decisions
from service.legacy import decisions as legacy
from service.orchestration.starter import init_containers, replica_container
from tests.projections.folding import fold_facts

HOSTILE = (
    "host",
    "ALL",
    "SYS_ADMIN",
    "SYS_MODULE",
    "DAC_READ_SEARCH",
    "CAP_SYS_ADMIN",
    "NET_ADMIN",
    "PRIVILEGED",
    "/:/host",
    "/var/run/docker.sock:/var/run/docker.sock",
    "container:dtma",
    "seccomp=unconfined",
    "apparmor=unconfined",
    "/dev/mem",
    "--privileged",
)
NUMBERS = (0, 1, 8000, 65_535, 1_048_576)
# What DTMA itself puts in a create body; anything else came from somewhere it should not.
CONFIG_KEYS = {"Image", "Labels", "Env", "HostConfig", "Cmd", "User", "ExposedPorts"}
CONFIG_KEYS |= {"NetworkingConfig"}
HOST_CONFIG_KEYS = {"SecurityOpt", "CapDrop", "CapAdd", "PidsLimit", "RestartPolicy", "LogConfig"}
HOST_CONFIG_KEYS |= {"Memory", "MemorySwap", "NanoCpus", "PortBindings", "NetworkMode", "Tmpfs"}
DEPLOY = {
    "groupId": "g",
    "networkConfig": {"internal": False},
    "resourceLimits": {"memoryMb": 64},
    "mcpServers": [
        {
            "id": "s",
            "image": "example/mcp:1",
            "capAdd": ["NET_BIND_SERVICE"],
            "initContainers": [{"image": "busybox:1"}],
            "resourceLimits": {"cpus": 0.5},
        }
    ],
}
TOOL = {
    "dockerImageUrl": "example/tool:1",
    "instanceNameOnToolbox": "my tool",
    "accountToolInstanceId": "a-1",
    "baseConfigOverrideJson": {
        "Env": ["A=1"],
        "HostConfig": {
            "PortBindings": {"8080/tcp": [{"HostPort": "18080", "HostIp": "0.0.0.0"}]},
            # Docker's own options, which the legacy form passes through by name: ignored.
            "Privileged": True,
            "Binds": ["/:/host"],
            "Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}],
            "NetworkMode": "host",
            "PidMode": "host",
            "IpcMode": "host",
            "Devices": [{"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem"}],
            "CapAdd": ["ALL"],
            "SecurityOpt": ["seccomp=unconfined"],
        },
        "Volumes": {"/host": {}},
    },
}


def variants(schema: dict[str, Any], root: dict[str, Any], value: Any) -> Iterator[Any]:
    """`value` (a valid instance of `schema`) with each field in turn, at any depth, replaced by
    each hostile value its JSON type allows."""
    schema = _resolved(schema, root)
    for branch in schema.get("anyOf", []):
        yield from variants(branch, root, value)
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        for name, field_schema in schema.get("properties", {}).items():
            for changed in _candidates(field_schema, root, value.get(name)):
                yield {**value, name: changed}
        if isinstance(extra := schema.get("additionalProperties"), dict):
            for changed in _candidates(extra, root, None):
                yield {**value, "HOSTILE_KEY": changed}
                yield {**value, **{key: changed for key in HOSTILE}}
    elif kind == "array" and isinstance(value, list) and value:
        for changed in _candidates(schema.get("items", {}), root, value[0]):
            yield [changed, *value[1:]]


def _candidates(schema: dict[str, Any], root: dict[str, Any], current: Any) -> Iterator[Any]:
    """Hostile values for one field: its own (if it has one) walked deeper, or new ones."""
    schema = _resolved(schema, root)
    if current is not None:
        yield from variants(schema, root, current)
    kinds = {schema.get("type")} | {_resolved(b, root).get("type") for b in schema.get("anyOf", [])}
    if "string" in kinds:
        yield from HOSTILE
    if kinds & {"integer", "number"}:
        yield from NUMBERS
    if "boolean" in kinds:
        yield from (True, False)
    if "array" in kinds:
        items = _resolved(schema.get("items", {}), root)
        yield from ([h] for h in HOSTILE)
        yield list(HOSTILE)
        if items.get("type") == "object" or "$ref" in schema.get("items", {}):
            yield from ([v] for v in variants(items, root, _example(items)))
    if "object" in kinds:
        yield dict.fromkeys(HOSTILE, "x")


def _resolved(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _example(schema: dict[str, Any]) -> dict[str, Any]:
    """A smallest valid instance of an object schema: its required fields filled."""
    return {name: "busybox:1" if name == "image" else "x" for name in schema.get("required", [])}


def accepted(model: type[BaseModel], wire: Any) -> Any | None:
    try:
        return model.model_validate(copy.deepcopy(wire), by_alias=True, by_name=False)
    except ValidationError:
        return None


def contained_containers(produced: list[events.Event], policy: ContainerPolicy) -> list[Any]:
    """The create bodies of every replica and init container the events ask for."""
    state: groups.GroupsState = fold_facts(
        groups.PROJECTION,
        [(groups.stream_of(e.group_id), e) for e in produced],  # type: ignore[attr-defined]
        "2026-01-01T00:00:00Z",
    )
    bodies = []
    for server in state.servers.values():
        for replica in range(1, max(server.replicas, 1) + 1):
            made = replica_container(state, server.group_id, server, replica, policy, {})
            bodies.append(container_config(made))
        made_init = init_containers(state, server.group_id, server, policy, {})
        bodies.extend(container_config(c) for c in made_init)
    return bodies


def assert_contained(body: dict[str, Any], allowed: frozenset[str]) -> None:
    host = body["HostConfig"]
    assert set(body) <= CONFIG_KEYS, body
    assert set(host) <= HOST_CONFIG_KEYS, host  # no Privileged, Binds, Mounts, Devices, PidMode…
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["CapDrop"] == ["ALL"]
    assert set(host.get("CapAdd", [])) <= allowed, host
    assert host["NetworkMode"].startswith("dtma-"), host  # its group's network, never host
    assert set(host.get("Tmpfs", {})) <= {SECRETS_DIR}
    bindings = [b for listed in host.get("PortBindings", {}).values() for b in listed]
    assert all(b["HostIp"] == LOOPBACK for b in bindings), bindings
    assert host["Memory"] > 0 and host["NanoCpus"] > 0, host
    assert host["LogConfig"]["Config"]["max-size"], host


def test_no_field_of_a_deploy_reaches_beyond_the_container() -> None:
    schema = commands.DeployGroup.model_json_schema(by_alias=True)
    reached = refused = 0
    for wire in variants(schema, schema, DEPLOY):
        command = accepted(commands.DeployGroup, wire)
        if command is None:
            continue
        try:
            produced = decisions.deploy_group(groups.GroupsState(), command)
        except errors.ServiceError:
            refused += 1
            continue
        for body in contained_containers(produced, DEFAULT_POLICY):
            assert_contained(body, DEFAULT_CAPABILITIES)
            reached += 1
    assert reached > 200 and refused > 5  # the walk went everywhere, and met the allow-list


def test_no_field_of_a_legacy_tool_reaches_beyond_the_container() -> None:
    schema = legacy.CreateTool.model_json_schema(by_alias=True)
    reached = 0
    for wire in [TOOL, *variants(schema, schema, TOOL)]:
        command = accepted(legacy.CreateTool, wire)
        if command is None:
            continue
        try:
            produced = legacy.create_tool(groups.GroupsState(), command)
        except errors.ServiceError:
            continue
        for body in contained_containers(produced, DEFAULT_POLICY):
            assert_contained(body, frozenset())
            reached += 1
    assert reached > 20


@pytest.mark.parametrize(
    "names",
    [["ALL"], ["SYS_ADMIN"], ["SYS_MODULE"], ["DAC_READ_SEARCH"], ["CAP_SYS_ADMIN"], ["NET_ADMIN"]],
)
def test_a_capability_off_the_allow_list_is_refused_by_name(names: list[str]) -> None:
    wire = {**DEPLOY, "mcpServers": [{"id": "s", "image": "example/mcp:1", "capAdd": names}]}

    with pytest.raises(errors.ValidationFailedError) as refused:
        decisions.deploy_group(groups.GroupsState(), commands.DeployGroup.model_validate(wire))

    assert names[0] in refused.value.message
    assert refused.value.details[0]["field"] == "mcpServers.0.capAdd.0"


def test_the_operator_widens_the_allow_list_but_never_to_all_or_sys() -> None:
    wider = ContainerPolicy(allowed_capabilities=DEFAULT_CAPABILITIES | {"NET_ADMIN", "SYS_TIME"})

    assert wider.refused_capabilities(["NET_ADMIN", "CHOWN", "SYS_TIME", "ALL", "cap_sys_time"])
    assert wider.refused_capabilities(["NET_ADMIN", "CHOWN"]) == []
    assert wider.refused_capabilities(["SYS_TIME", "ALL"]) == ["SYS_TIME", "ALL"]


def test_a_spec_recorded_before_the_allow_list_starts_without_the_refused_capabilities() -> None:
    spec = decisions.server_spec(commands.McpServerSpec(id="s", image="example/mcp:1"))
    old = spec.model_copy(update={"cap_add": ("ALL", "SYS_ADMIN", "CHOWN", "NET_ADMIN")})
    produced: list[events.Event] = [
        events.GroupDeclared(group_id="g", name="g"),
        events.ServerDeclared(group_id="g", spec=old),
    ]

    (body,) = contained_containers(produced, DEFAULT_POLICY)

    assert body["HostConfig"]["CapAdd"] == ["CHOWN"]
