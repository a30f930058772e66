"""The legacy single-tool routes' vocabulary, pure: commands, tool ids, decisions, status words.

A tool is an MCP server with one replica in the group `legacy`, addressed by the backend's name
for it. The commands keep the old backend's wire form (unknown keys ignored, Docker's own
PascalCase inside `baseConfigOverrideJson`), not the contract's strict one. No I/O.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_pascal

from projections import containers, events, groups, specs
from service import container_policy, errors
from service.handling import commands, decisions

LEGACY_GROUP = "legacy"
ID_PREFIX = "tool-"
HASH_CHARS = 6
MAX_ID = 63  # commands.ID_PATTERN
MCP_PORT = 8000  # a tool that names no port: ServerSpec's default
UNSAFE = re.compile(r"[^a-z0-9-]+")
PORT_KEY = re.compile(r"^([0-9]{1,5})(?:/tcp)?$")
ENV_NAME = re.compile(commands.ENV_NAME)


class ToolCommand(commands.Command):
    # The old backend may send keys this service does not know: a legacy route ignores them
    # rather than refusing them with the contract's 422.
    model_config = ConfigDict(extra="ignore")


def _port(value: int) -> int:
    if not 0 < value <= 65_535:
        raise ValueError("a port is between 1 and 65535")
    return value


def _port_key(key: object) -> int:
    """A container port as Docker names it, "8080/tcp" or "8080"."""
    match = PORT_KEY.match(key) if isinstance(key, str) else None
    if match is None:
        raise ValueError("a port binding's key is a TCP port like '8080/tcp'")
    return _port(int(match.group(1)))


def _host_port(value: object) -> int | None:
    """Docker's HostPort, "18080"; empty or absent: no fixed host port."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError("a HostPort is a port number")
    return _port(int(text))


def _env_entry(entry: str) -> str:
    name, equals, _value = entry.partition("=")
    if not equals or not ENV_NAME.match(name):
        raise ValueError("an Env entry is NAME=value with NAME a plain variable name")
    return entry


def _instance_name(name: str) -> str:
    """A name the routes can address: not blank, no control character, no path segment."""
    if not name.strip() or not name.isprintable() or "/" in name or name in (".", ".."):
        raise ValueError("a name has a visible character and no '/' or control character")
    return name


class DockerForm(BaseModel):
    """Docker's own create options as the backend passes them through: PascalCase keys."""

    model_config = ConfigDict(alias_generator=to_pascal, extra="ignore", frozen=True)


class PortBinding(DockerForm):
    # A HostIp is ignored: fixed host ports are bound on the loopback only (see ContainerSpec).
    host_port: Annotated[
        int | None,
        BeforeValidator(_host_port),
        WithJsonSchema(
            {
                "type": ["string", "integer", "null"],
                "description": 'a port, "18080" as Docker has it',
            }
        ),
    ] = None


class HostConfig(DockerForm):
    port_bindings: dict[Annotated[int, BeforeValidator(_port_key)], list[PortBinding] | None] = {}

    @model_validator(mode="after")
    def _host_ports_once(self) -> HostConfig:
        host_ports = [host for _, host in self.host_ports]
        if len(set(host_ports)) != len(host_ports):
            raise ValueError("a host port is bound twice")
        return self

    @property
    def host_ports(self) -> tuple[tuple[int, int], ...]:
        """(container port, host port) of each binding that names a host port."""
        return tuple(
            (container_port, binding.host_port)
            for container_port, listed in self.port_bindings.items()
            for binding in listed or []
            if binding.host_port is not None
        )


class BaseConfig(DockerForm):
    env: Annotated[list[Annotated[str, AfterValidator(_env_entry)]], Field(max_length=256)] = []
    host_config: HostConfig | None = None


InstanceName = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_instance_name)]


class CreateTool(ToolCommand):
    """POST /tools."""

    docker_image_url: Annotated[str, Field(pattern=commands.IMAGE)]
    instance_name_on_toolbox: InstanceName
    account_tool_instance_id: Annotated[str, Field(min_length=1, max_length=255)]
    base_config_override_json: BaseConfig | None = None


class RemoveTool(ToolCommand):
    """DELETE /tools/{name}."""

    name: str


class ScaleTool(ToolCommand):
    """POST /tools/{name}/start (replicas 1) and /stop (replicas 0)."""

    name: str
    replicas: Annotated[int, Field(ge=0, le=1)]


def tool_id(name: str) -> str:
    """A valid, stable server id for a tool's name: `tool-<safe name>`, with a short hash of the
    name when making it safe changed it (so "My Tool" and "my-tool" differ)."""
    safe = UNSAFE.sub("-", name.lower()).strip("-")
    room = MAX_ID - len(ID_PREFIX) - 1 - HASH_CHARS
    if safe == name and len(safe) <= room + 1 + HASH_CHARS:
        return ID_PREFIX + safe
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    return ID_PREFIX + "-".join(part for part in (safe[:room].strip("-"), digest) if part)


def tool_servers(state: groups.GroupsState) -> list[groups.ServerState]:
    """The servers of the `legacy` group that the legacy routes declared, in declaration order."""
    group = state.groups.get(LEGACY_GROUP)
    servers = [state.servers[server_id] for server_id in (group.servers if group else ())]
    return [server for server in servers if server.spec.legacy is not None]


def find_tool(state: groups.GroupsState, name: str) -> groups.ServerState | None:
    return next(
        (s for s in tool_servers(state) if s.spec.legacy and s.spec.legacy.instance_name == name),
        None,
    )


def known_tool(state: groups.GroupsState, name: str) -> groups.ServerState:
    tool = find_tool(state, name)
    if tool is None:
        raise errors.NotFoundError(f"Tool instance '{name}' not found or not managed by this DTMA.")
    return tool


def create_tool(
    state: groups.GroupsState,
    command: CreateTool,
    policy: container_policy.ContainerPolicy = container_policy.DEFAULT_POLICY,
) -> list[events.Event]:
    """Declare the `legacy` group if new, and the tool as a server of it."""
    spec = tool_spec(command)
    name = command.instance_name_on_toolbox
    if find_tool(state, name) is not None:
        raise errors.ConflictError(f"Instance with name '{name}' already exists.", code="id_in_use")
    if spec.id in state.servers:
        raise errors.ConflictError(
            f"the name '{name}' gives the server id {spec.id!r}, which is in use", code="id_in_use"
        )
    _refuse_taken_host_ports(state, spec)
    decisions.refuse_over_capacity(state, {spec.id: spec.replicas}, policy)
    declared: list[events.Event] = []
    if LEGACY_GROUP not in state.groups:
        declared.append(events.GroupDeclared(group_id=LEGACY_GROUP, name=LEGACY_GROUP))
    declared.append(events.ServerDeclared(group_id=LEGACY_GROUP, spec=spec))
    return declared


def remove_tool(state: groups.GroupsState, command: RemoveTool) -> events.ServerRemoved:
    tool = known_tool(state, command.name)
    return events.ServerRemoved(group_id=tool.group_id, server_id=tool.spec.id)


def scale_tool(
    state: groups.GroupsState,
    command: ScaleTool,
    policy: container_policy.ContainerPolicy = container_policy.DEFAULT_POLICY,
) -> events.ReplicasScaled:
    tool = known_tool(state, command.name)
    decisions.refuse_over_capacity(state, {tool.spec.id: command.replicas}, policy)
    return events.ReplicasScaled(
        group_id=tool.group_id, server_id=tool.spec.id, replicas=command.replicas
    )


def tool_spec(command: CreateTool) -> specs.ServerSpec:
    """The tool as an MCP server: one replica, no health probe, its ports and environment.

    Its own port (the one a free loopback port is published for when it has no fixed one) is
    the first container port its bindings name. `Env` values are stored in the log like any
    server's `env`: settings, not secrets (credentials go through /credentials).
    """
    config = command.base_config_override_json or BaseConfig()
    host_config = config.host_config or HostConfig()
    return specs.ServerSpec(
        id=tool_id(command.instance_name_on_toolbox),
        image=command.docker_image_url,
        env=dict(entry.split("=", 1) for entry in config.env),
        port=next(iter(host_config.port_bindings), MCP_PORT),
        replicas=1,
        health_check=specs.HealthCheck(type="none"),
        host_ports=host_config.host_ports,
        legacy=specs.LegacyTool(
            instance_name=command.instance_name_on_toolbox,
            account_tool_instance_id=command.account_tool_instance_id,
        ),
    )


def _refuse_taken_host_ports(state: groups.GroupsState, spec: specs.ServerSpec) -> None:
    wanted = {host for _, host in spec.host_ports}
    for server in state.servers.values():
        taken = wanted & {host for _, host in server.spec.host_ports}
        if taken:
            raise errors.ConflictError(
                f"Port conflict: Requested HostPort {min(taken)} is already in use by a"
                " managed instance.",
                code="host_port_in_use",
            )


def tool_status(server: groups.ServerState, instances: list[containers.Instance]) -> str:
    """The backend's word for a tool: pending, starting, running, stopping, stopped or error."""
    states = {i.state for i in instances}
    if server.replicas == 0:
        return "stopping" if states & {"running", "created"} else "stopped"
    if "running" in states:
        return "running"
    if states & {"failed", "exited"}:
        return "error"
    return "starting" if states else "pending"
