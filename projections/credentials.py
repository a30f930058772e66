"""Credential read model, a pure fold: each server's credential versions — names, modes,
status, times and (until revoked) their ciphertext — never a plaintext value."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from eventstore import times
from projections import events, specs
from projections.folds import Projection, StreamVersioned, with_stream_versions

Status = Literal["pending", "injected", "failed", "retired", "revoked"]


class Version(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    agent_id: str
    key_id: str
    secrets: tuple[specs.SealedSecret, ...]  # emptied when revoked or retired: forgotten
    oauth: tuple[specs.OAuthGrant, ...] = ()
    oauth_errors: dict[str, str] = {}  # provider -> why its last token request failed
    source: str = "request"
    names: tuple[str, ...]
    modes: dict[str, str]
    status: Status = "pending"
    injected_at: str
    expires_at: str | None = None
    applied: dict[int, str] = {}  # replica -> container id holding its file secrets
    last_error: str | None = None
    forgotten: bool = False

    def file_secrets(self) -> tuple[specs.SealedSecret, ...]:
        return tuple(s for s in self.secrets if s.mode == "file")

    def in_place(self, replica: int, container_id: str | None) -> bool:
        """Its files are in that replica's container (or it has none to put there)."""
        return not self.file_secrets() or self.applied.get(replica) == container_id

    def env_secrets(self) -> tuple[specs.SealedSecret, ...]:
        return tuple(s for s in self.secrets if s.mode == "env")

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and times.parse_time(self.expires_at) < now


class ServerCredentials(BaseModel):
    model_config = ConfigDict(frozen=True)

    current: int | None = None
    versions: dict[int, Version] = {}

    def active(self) -> Version | None:
        version = self.versions.get(self.current) if self.current is not None else None
        return version if version is not None and not version.forgotten else None


class CredentialsState(StreamVersioned):
    """`stream_versions`: each credentials-<server> stream's version; commands append with
    it."""

    servers: dict[str, ServerCredentials] = {}

    def of(self, server_id: str) -> ServerCredentials:
        return self.servers.get(server_id, ServerCredentials())

    def next_version(self, server_id: str) -> int:
        return max(self.of(server_id).versions, default=0) + 1


STREAM_PREFIX = "credentials-"


def stream_of(server_id: str) -> str:
    return STREAM_PREFIX + server_id


def _fold(state: CredentialsState, event: events.Event, at: events.Envelope) -> CredentialsState:
    match event:
        case events.CredentialsInjected():
            server = state.of(event.server_id)
            versions = {
                number: v.model_copy(update={"status": "retired"})
                if v.status in ("pending", "injected", "failed")
                else v
                for number, v in server.versions.items()
            }
            versions[event.version] = Version(
                version=event.version,
                agent_id=event.agent_id,
                key_id=event.key_id,
                secrets=event.secrets,
                names=tuple(s.name for s in event.secrets),
                modes={s.name: s.mode for s in event.secrets},
                injected_at=at.recorded_at,
                expires_at=event.expires_at,
                oauth=event.oauth,
                source=event.source,
            )
            return _put(
                state, event.server_id, ServerCredentials(current=event.version, versions=versions)
            )
        case events.CredentialsApplied():
            return _change(
                state,
                event.server_id,
                event.version,
                lambda v: {
                    "applied": {**v.applied, event.replica: event.container_id},
                    "status": "injected",
                    "last_error": None,
                },
            )
        case events.CredentialsFailed():
            return _change(
                state,
                event.server_id,
                event.version,
                lambda _v: {"status": "failed", "last_error": event.reason},
            )
        case events.OAuthRefreshFailed():
            return _change(
                state,
                event.server_id,
                event.version,
                lambda v: {"oauth_errors": {**v.oauth_errors, event.provider: event.reason}},
            )
        case events.CredentialsRevoked():
            return _forget(state, event.server_id, event.versions, "revoked")
        case events.CredentialsRetired():
            return _forget(state, event.server_id, event.versions, "retired")
    return state


def _forget(
    state: CredentialsState, server_id: str, numbers: tuple[int, ...], status: Status
) -> CredentialsState:
    """Their keys are destroyed: keep names and times, drop the ciphertext nothing can open."""
    server = state.of(server_id)
    forgotten: dict[str, object] = {
        "status": status,
        "secrets": (),
        "oauth": (),
        "forgotten": True,
        "applied": {},
    }
    versions = {
        number: v.model_copy(update=forgotten) if number in numbers else v
        for number, v in server.versions.items()
    }
    return _put(state, server_id, server.model_copy(update={"versions": versions}))


def _put(state: CredentialsState, server_id: str, server: ServerCredentials) -> CredentialsState:
    return state.model_copy(update={"servers": {**state.servers, server_id: server}})


def _change(
    state: CredentialsState,
    server_id: str,
    number: int,
    changes: Callable[[Version], dict[str, object]],
) -> CredentialsState:
    server = state.of(server_id)
    version = server.versions.get(number)
    if version is None or version.forgotten:
        return state
    updated = version.model_copy(update=changes(version))
    return _put(
        state,
        server_id,
        server.model_copy(update={"versions": {**server.versions, number: updated}}),
    )


apply = with_stream_versions(STREAM_PREFIX, _fold)

PROJECTION = Projection(
    name="credentials", fold_version=1, state_type=CredentialsState, apply=apply
)
