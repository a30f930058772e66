"""Configuration read model, a pure fold: templates, each server's configuration versions
(current and history) and which version each replica's container holds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from projections import events
from projections.folds import Projection, StreamVersioned, with_stream_versions

STREAM_PREFIX = "config-"  # config-<server id>: the server's configuration commands
TEMPLATE_PREFIX = "template-"  # template-<template id>: its one definition


def stream_of(server_id: str) -> str:
    return STREAM_PREFIX + server_id


def template_stream_of(template_id: str) -> str:
    return TEMPLATE_PREFIX + template_id


class Template(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    json_schema: dict[str, Any]
    defaults: dict[str, Any] = {}
    environments: dict[str, dict[str, Any]] = {}
    position: int
    defined_at: str


class ConfigVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    config: dict[str, Any]
    given: dict[str, Any] = {}
    template_id: str | None = None
    environment: str | None = None
    rolled_back_from: int | None = None
    position: int
    at: str


class Applied(BaseModel):
    """The version a replica's container holds, and when it got it."""

    model_config = ConfigDict(frozen=True)

    replica: int
    version: int
    at: str


class ServerConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    current: int = 0  # 0: never configured
    versions: dict[int, ConfigVersion] = {}
    # container id -> what it holds (by container: a replica's successor may run beside it)
    applied: dict[str, Applied] = {}
    last_error: str | None = None

    def active(self) -> ConfigVersion | None:
        return self.versions.get(self.current)

    def holds(self, container_id: str, version: int) -> bool:
        """Whether that container already has that version."""
        applied = self.applied.get(container_id)
        return applied is not None and applied.version == version


class ConfigState(StreamVersioned):
    """`stream_versions`: each config-<server> and template-<id> stream's version; commands
    append with it."""

    templates: dict[str, Template] = {}
    servers: dict[str, ServerConfig] = {}

    def of(self, server_id: str) -> ServerConfig:
        return self.servers.get(server_id, ServerConfig())

    def next_version(self, server_id: str) -> int:
        return max(self.of(server_id).versions, default=0) + 1


def _fold(state: ConfigState, event: events.Event, at: events.Envelope) -> ConfigState:
    match event:
        case events.ConfigTemplateDefined():
            template = Template(
                id=event.template_id,
                json_schema=event.json_schema,
                defaults=event.defaults,
                environments=event.environments,
                position=at.position,
                defined_at=at.recorded_at,
            )
            templates = {**state.templates, event.template_id: template}
            return state.model_copy(update={"templates": templates})
        case events.ServerConfigured():
            server = state.of(event.server_id)
            version = ConfigVersion(
                **event.model_dump(exclude={"server_id"}), position=at.position, at=at.recorded_at
            )
            versions = {**server.versions, event.version: version}
            return _put(state, event.server_id, current=event.version, versions=versions)
        case events.ConfigApplied():
            server = state.of(event.server_id)
            if event.version not in server.versions:
                return state
            held = Applied(replica=event.replica, version=event.version, at=at.recorded_at)
            applied = {**server.applied, event.container_id: held}
            return _put(state, event.server_id, applied=applied, last_error=None)
        case events.ConfigApplyFailed():
            if event.server_id not in state.servers:
                return state
            return _put(state, event.server_id, last_error=event.reason)
        case events.ContainerRemoved():
            return _forget_container(state, event.server_id, event.container_id)
        case events.ServerRemoved():
            if event.server_id not in state.servers:
                return state
            return _put(state, event.server_id, applied={}, last_error=None)
    return state


def _forget_container(state: ConfigState, server_id: str, container_id: str) -> ConfigState:
    server = state.servers.get(server_id)
    if server is None or container_id not in server.applied:
        return state
    applied = {k: v for k, v in server.applied.items() if k != container_id}
    return _put(state, server_id, applied=applied)


def _put(state: ConfigState, server_id: str, **changes: object) -> ConfigState:
    server = state.of(server_id).model_copy(update=changes)
    return state.model_copy(update={"servers": {**state.servers, server_id: server}})


apply = with_stream_versions(TEMPLATE_PREFIX, with_stream_versions(STREAM_PREFIX, _fold))

PROJECTION = Projection(name="config", fold_version=1, state_type=ConfigState, apply=apply)
