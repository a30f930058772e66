"""Health read model: breaker configuration per MCP server and the default. A pure fold."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from projections import events
from projections.folds import Projection

DEFAULT_SCOPE = "default"


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


class HealthState(BaseModel):
    model_config = ConfigDict(frozen=True)

    breaker_default: BreakerSettings = BreakerSettings()
    breaker_servers: dict[str, BreakerSettings] = {}

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


def apply(state: HealthState, event: events.Event, _at: events.Envelope) -> HealthState:
    if not isinstance(event, events.CircuitBreakerConfigured):
        return state
    if event.mcp_server_id is None:
        return state.model_copy(update={"breaker_default": settings_of(event)})
    servers = {**state.breaker_servers, event.mcp_server_id: settings_of(event)}
    return state.model_copy(update={"breaker_servers": servers})


PROJECTION = Projection(name="health", fold_version=1, state_type=HealthState, apply=apply)
