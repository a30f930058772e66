"""Desired state: container groups and their MCP servers as commanded. A pure fold."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from projections import events, specs
from projections.folds import Projection, StreamVersioned, with_stream_versions

STREAM_PREFIX = "group-"


def stream_of(group_id: str) -> str:
    return STREAM_PREFIX + group_id


class ServerState(BaseModel):
    model_config = ConfigDict(frozen=True)

    group_id: str
    spec: specs.ServerSpec
    replicas: int
    # Position of the last event that asks for new containers (a new spec, a restart).
    generation: int
    # Position of its last ServerDeclared (a deploy, even of the same spec): the generation
    # its image digest is pinned for, so a restart runs the same bits and a redeploy does not.
    declared_generation: int = 0
    # Position of the last command event that changed it (declared, scaled, restarted): what
    # the reconciler names as the cause of what it does for the server.
    changed_at: int = 0
    declared_at: str | None = None  # when its spec was last declared


class GroupState(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    internal: bool = False
    limits: specs.Limits | None = None
    servers: tuple[str, ...] = ()


class GroupsState(StreamVersioned):
    """`stream_versions`: each group stream's version, removed groups included; commands
    append with it."""

    groups: dict[str, GroupState] = {}
    servers: dict[str, ServerState] = {}

    def limits_of(self, server_id: str) -> specs.Limits:
        """The server's limits over its group's, with the default pids limit at the bottom."""
        server = self.servers[server_id]
        group = self.groups.get(server.group_id)
        base = specs.Limits(pids=specs.DEFAULT_PIDS).model_copy(
            update=(group.limits.model_dump(exclude_none=True) if group and group.limits else {})
        )
        return (server.spec.limits or specs.Limits()).over(base)

    def group_of(self, server_id: str) -> str | None:
        server = self.servers.get(server_id)
        return server.group_id if server else None


def _fold(state: GroupsState, event: events.Event, at: events.Envelope) -> GroupsState:
    match event:
        case events.GroupDeclared():
            old = state.groups.get(event.group_id)
            group = GroupState(
                id=event.group_id,
                name=event.name,
                internal=event.internal,
                limits=event.limits,
                servers=old.servers if old else (),
            )
            return state.model_copy(update={"groups": {**state.groups, event.group_id: group}})
        case events.ServerDeclared():
            return _declare(state, event, at)
        case events.ReplicasScaled():
            return _update_server(
                state, event.server_id, replicas=event.replicas, changed_at=at.position
            )
        case events.ServerRemoved():
            return _remove_servers(state, {event.server_id})
        case events.GroupRemoved():
            removed = state.groups.get(event.group_id)
            trimmed = _remove_servers(state, set(removed.servers) if removed else set())
            groups = {k: v for k, v in trimmed.groups.items() if k != event.group_id}
            return trimmed.model_copy(update={"groups": groups})
        case events.GroupRestartRequested():
            for server_id in event.order:
                state = _update_server(
                    state, server_id, generation=at.position, changed_at=at.position
                )
            return state
    return state


def _declare(state: GroupsState, event: events.ServerDeclared, at: events.Envelope) -> GroupsState:
    server = ServerState(
        group_id=event.group_id,
        spec=event.spec,
        replicas=event.spec.replicas,
        generation=at.position,
        declared_generation=at.position,
        changed_at=at.position,
        declared_at=at.recorded_at,
    )
    groups = dict(state.groups)
    group = groups.get(event.group_id)
    if group is not None and event.spec.id not in group.servers:
        groups[event.group_id] = group.model_copy(
            update={"servers": (*group.servers, event.spec.id)}
        )
    servers = {**state.servers, event.spec.id: server}
    return state.model_copy(update={"groups": groups, "servers": servers})


def _update_server(state: GroupsState, server_id: str, **changes: object) -> GroupsState:
    server = state.servers.get(server_id)
    if server is None:
        return state
    servers = {**state.servers, server_id: server.model_copy(update=changes)}
    return state.model_copy(update={"servers": servers})


def _remove_servers(state: GroupsState, server_ids: set[str]) -> GroupsState:
    groups = {
        gid: g.model_copy(update={"servers": tuple(s for s in g.servers if s not in server_ids)})
        for gid, g in state.groups.items()
    }
    servers = {k: v for k, v in state.servers.items() if k not in server_ids}
    return state.model_copy(update={"groups": groups, "servers": servers})


apply = with_stream_versions(STREAM_PREFIX, _fold)

PROJECTION = Projection(name="groups", fold_version=3, state_type=GroupsState, apply=apply)
