"""Health read model, a pure fold: breaker configuration (per MCP server and the default), each
replica's health as the probes last judged it, each server's circuit with its recent transitions,
and recent container failures for the comprehensive report."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from eventstore import times
from projections import events
from projections.folds import Projection

DEFAULT_SCOPE = "default"


def breaker_stream_of(server_id: str | None) -> str:
    """breaker-<server id>, or breaker-default: the breaker settings commanded for it."""
    return f"breaker-{server_id or DEFAULT_SCOPE}"


class BreakerSettings(BaseModel):
    """Settings as configured for one scope; None inherits."""

    model_config = ConfigDict(frozen=True)

    failure_threshold: int | None = None
    recovery_threshold: int | None = None
    open_timeout_ms: int | None = None
    enabled: bool | None = None


class BreakerConfig(BaseModel):
    """Settings in force: every field decided."""

    model_config = ConfigDict(frozen=True)

    failure_threshold: int = 3
    recovery_threshold: int = 2
    open_timeout_ms: int = 30_000
    enabled: bool = True


BUILT_IN = BreakerConfig()


KEPT_TRANSITIONS = 20
KEPT_FAILURES = 10
TIME_FORMAT = times.TIME_FORMAT


class ReplicaHealth(BaseModel):
    """The probes' verdict on one replica's current container."""

    model_config = ConfigDict(frozen=True)

    container_id: str
    health: Literal["healthy", "unhealthy"]
    since: str
    position: int
    reason: str | None = None
    timed_out: bool = False


class TransitionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    from_state: events.Circuit
    to_state: events.Circuit
    cause: str
    position: int
    at: str


class CircuitView(BaseModel):
    model_config = ConfigDict(frozen=True)

    state: events.Circuit = "closed"
    opened_at: str | None = None
    next_attempt_at: str | None = None
    half_open_position: int | None = None  # where the current recovery attempt began
    transitions: tuple[TransitionRecord, ...] = ()  # the last KEPT_TRANSITIONS, oldest first


CLOSED = CircuitView()


class FailureRecord(BaseModel):
    """A replica's container that died or could not start."""

    model_config = ConfigDict(frozen=True)

    replica: int
    container_id: str | None
    exit_code: int | None
    oom_killed: bool
    at: str
    position: int
    reason: str


class HealthState(BaseModel):
    model_config = ConfigDict(frozen=True)

    breaker_default: BreakerSettings = BreakerSettings()
    breaker_servers: dict[str, BreakerSettings] = {}
    # server id -> replica -> the probes' verdict on its container (absent: not judged yet)
    replicas: dict[str, dict[int, ReplicaHealth]] = {}
    circuits: dict[str, CircuitView] = {}  # absent: closed, never transitioned
    failures: dict[str, tuple[FailureRecord, ...]] = {}  # the last KEPT_FAILURES per server
    server_groups: dict[str, str] = {}  # server id -> group id, to forget a removed group's

    def circuit(self, server_id: str) -> CircuitView:
        return self.circuits.get(server_id, CLOSED)

    def replica_health(self, server_id: str, replica: int, container_id: str | None) -> str | None:
        """ "healthy"/"unhealthy" as probes judged this container, None if not judged yet."""
        verdict = self.replicas.get(server_id, {}).get(replica)
        if verdict is None or verdict.container_id != container_id:
            return None
        return verdict.health

    def breaker_config(self, server_id: str | None) -> BreakerConfig:
        override = self.breaker_servers.get(server_id) if server_id else None
        return effective(self.breaker_default, override)

    def knows(self, server_id: str) -> bool:
        return server_id in self.breaker_servers


def settings_of(event: events.CircuitBreakerConfigured) -> BreakerSettings:
    return BreakerSettings(
        failure_threshold=event.failure_threshold,
        recovery_threshold=event.recovery_threshold,
        open_timeout_ms=event.open_timeout_ms,
        enabled=event.enabled,
    )


def latest_settings(history: Iterable[events.Event]) -> BreakerSettings:
    """The settings a breaker stream holds: its last CircuitBreakerConfigured wins."""
    settings = BreakerSettings()
    for event in history:
        if isinstance(event, events.CircuitBreakerConfigured):
            settings = settings_of(event)
    return settings


def effective(default: BreakerSettings, override: BreakerSettings | None) -> BreakerConfig:
    merged = BUILT_IN.model_dump()
    for layer in (default, override):
        if layer is not None:
            merged.update(layer.model_dump(exclude_none=True))
    return BreakerConfig(**merged)


def apply(state: HealthState, event: events.Event, at: events.Envelope) -> HealthState:
    match event:
        case events.CircuitBreakerConfigured(mcp_server_id=None):
            return state.model_copy(update={"breaker_default": settings_of(event)})
        case events.CircuitBreakerConfigured(mcp_server_id=str(server_id)):
            servers = {**state.breaker_servers, server_id: settings_of(event)}
            return state.model_copy(update={"breaker_servers": servers})
        case events.ReplicaHealthChanged():
            verdict = ReplicaHealth(
                container_id=event.container_id,
                health=event.health,
                since=at.recorded_at,
                position=at.position,
                reason=event.reason,
                timed_out=event.timed_out,
            )
            replicas = {**state.replicas.get(event.server_id, {}), event.replica: verdict}
            return state.model_copy(
                update={"replicas": {**state.replicas, event.server_id: replicas}}
            )
        case events.CircuitTransitioned():
            return _transition(state, event, at)
        case events.ContainerDied() | events.ContainerFailedToStart():
            return _record_failure(state, event.server_id, _failure_of(event, at))
        case events.ServerDeclared():
            server_groups = {**state.server_groups, event.spec.id: event.group_id}
            return state.model_copy(update={"server_groups": server_groups})
        case events.ServerRemoved():
            return _forget_servers(state, {event.server_id})
        case events.GroupRemoved():
            members = {s for s, g in state.server_groups.items() if g == event.group_id}
            return _forget_servers(state, members)
    return state


def _transition(
    state: HealthState, event: events.CircuitTransitioned, at: events.Envelope
) -> HealthState:
    view = state.circuit(event.server_id)
    record = TransitionRecord(
        from_state=event.from_state,
        to_state=event.to_state,
        cause=event.cause,
        position=at.position,
        at=at.recorded_at,
    )
    changes: dict[str, object] = {
        "state": event.to_state,
        "transitions": (*view.transitions, record)[-KEPT_TRANSITIONS:],
    }
    if event.to_state == "open":
        changes["opened_at"] = at.recorded_at
        changes["next_attempt_at"] = later(at.recorded_at, event.open_timeout_ms or 0)
    else:
        changes["next_attempt_at"] = None
    if event.to_state == "closed":
        changes["opened_at"] = None
    changes["half_open_position"] = at.position if event.to_state == "half_open" else None
    circuits = {**state.circuits, event.server_id: view.model_copy(update=changes)}
    return state.model_copy(update={"circuits": circuits})


def _failure_of(
    event: events.ContainerDied | events.ContainerFailedToStart, at: events.Envelope
) -> FailureRecord:
    if isinstance(event, events.ContainerDied):
        code, oom = event.exit_code, event.oom_killed
        reason = "out of memory" if oom else f"exited with code {code}"
    else:
        code, oom, reason = None, False, event.reason
    return FailureRecord(
        replica=event.replica,
        container_id=event.container_id,
        exit_code=code,
        oom_killed=oom,
        at=at.recorded_at,
        position=at.position,
        reason=reason,
    )


def _record_failure(state: HealthState, server_id: str, failure: FailureRecord) -> HealthState:
    kept = (*state.failures.get(server_id, ()), failure)[-KEPT_FAILURES:]
    return state.model_copy(update={"failures": {**state.failures, server_id: kept}})


def _forget_servers(state: HealthState, server_ids: set[str]) -> HealthState:
    return state.model_copy(
        update={
            field: {k: v for k, v in getattr(state, field).items() if k not in server_ids}
            for field in ("replicas", "circuits", "failures", "server_groups")
        }
    )


def later(text: str, milliseconds: int) -> str:
    return times.format_time(times.parse_time(text) + timedelta(milliseconds=milliseconds))


PROJECTION = Projection(name="health", fold_version=2, state_type=HealthState, apply=apply)
