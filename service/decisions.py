"""Pure decisions: current state and a command in, the events to append out. No I/O."""

from __future__ import annotations

from projections import events, health
from service import commands


def breaker_stream(server_id: str | None) -> str:
    return f"breaker-{server_id or health.DEFAULT_SCOPE}"


def configure_breaker(
    current: health.BreakerSettings, command: commands.ConfigureBreaker
) -> events.CircuitBreakerConfigured:
    """The scope's settings after the command: given fields replace, omitted ones stay."""
    changes = {
        "failure_threshold": command.failure_threshold,
        "recovery_threshold": command.recovery_threshold,
        "open_timeout_ms": command.open_timeout,
        "enabled": command.circuit_breaker_enabled,
    }
    merged = current.model_dump() | {k: v for k, v in changes.items() if v is not None}
    return events.CircuitBreakerConfigured(mcp_server_id=command.mcp_server_id, **merged)
