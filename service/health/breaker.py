"""The circuit breaker of one MCP server as a pure state machine: `transition(breaker, signal,
config) -> (breaker, transition or None)`. No I/O and no clock: times come in with the signals.

Signals are what the health monitor observes: a failure (a failed probe, a container that died or
would not start), a success (a probe that passed) and the clock ticking. The circuit itself only
moves when the monitor records the proposed `Transition` and calls `enter` for it, so every
change of circuit is an event in the log (the health projection folds the same event).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from projections import events, health

SETTLED_S = 60.0
"""In `closed`, failures are forgiven only once a replica has stayed healthy this long: a server
that crashes a few seconds after every start passes probes in between, and must still trip."""


@dataclass(frozen=True, slots=True)
class Failure:
    at: float
    error: str


@dataclass(frozen=True, slots=True)
class Success:
    at: float
    healthy_for_s: float  # how long the replica that passed has been healthy without a break


@dataclass(frozen=True, slots=True)
class Tick:
    at: float


@dataclass(frozen=True, slots=True)
class RecoveryRequested:
    """An operator restarted the server's group: an open circuit tries to recover now."""

    at: float


Signal = Failure | Success | Tick | RecoveryRequested


@dataclass(frozen=True, slots=True)
class Transition:
    to: events.Circuit
    cause: str


@dataclass(frozen=True, slots=True)
class Breaker:
    circuit: events.Circuit = "closed"
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_check_at: float | None = None
    last_error: str | None = None
    next_attempt_at: float | None = None  # while open: when the recovery attempt is due


def transition(
    breaker: Breaker, signal: Signal, config: health.BreakerConfig
) -> tuple[Breaker, Transition | None]:
    """The breaker after `signal`, and the transition it calls for (to be recorded), if any."""
    match signal:
        case Failure():
            return _on_failure(breaker, signal, config)
        case Success():
            return _on_success(breaker, signal, config)
        case Tick():
            return _on_tick(breaker, signal, config)
        case RecoveryRequested():
            if breaker.circuit == "open" and config.enabled:
                return breaker, Transition(
                    "half_open", "group restart requested; attempting recovery"
                )
            return breaker, None


def _on_failure(
    breaker: Breaker, failure: Failure, config: health.BreakerConfig
) -> tuple[Breaker, Transition | None]:
    counted = replace(
        breaker,
        consecutive_failures=breaker.consecutive_failures + 1,
        consecutive_successes=0,
        last_check_at=failure.at,
        last_error=failure.error,
    )
    if not config.enabled:
        return counted, None
    if breaker.circuit == "half_open":
        return counted, Transition("open", f"recovery attempt failed: {failure.error}")
    if breaker.circuit == "closed" and counted.consecutive_failures >= config.failure_threshold:
        cause = f"{counted.consecutive_failures} consecutive failures, the last: {failure.error}"
        return counted, Transition("open", cause)
    return counted, None


def _on_success(
    breaker: Breaker, success: Success, config: health.BreakerConfig
) -> tuple[Breaker, Transition | None]:
    if breaker.circuit == "open":  # a replica left over from before; the attempt decides
        return replace(breaker, last_check_at=success.at), None
    counted = replace(
        breaker,
        consecutive_successes=breaker.consecutive_successes + 1,
        last_check_at=success.at,
    )
    if breaker.circuit == "closed":
        if success.healthy_for_s >= SETTLED_S:
            counted = replace(counted, consecutive_failures=0)
        return counted, None
    counted = replace(counted, consecutive_failures=0)
    if config.enabled and counted.consecutive_successes >= config.recovery_threshold:
        cause = f"{counted.consecutive_successes} consecutive successes in the recovery attempt"
        return counted, Transition("closed", cause)
    return counted, None


def _on_tick(
    breaker: Breaker, tick: Tick, config: health.BreakerConfig
) -> tuple[Breaker, Transition | None]:
    if breaker.circuit != "closed" and not config.enabled:
        return breaker, Transition("closed", "circuit breaker disabled")
    due = breaker.next_attempt_at
    if breaker.circuit == "open" and due is not None and tick.at >= due:
        return breaker, Transition("half_open", "open timeout elapsed; attempting recovery")
    return breaker, None


def enter(breaker: Breaker, to: events.Circuit, at: float, config: health.BreakerConfig) -> Breaker:
    """The breaker once a transition to `to` is recorded: counting starts afresh."""
    return replace(
        breaker,
        circuit=to,
        consecutive_failures=0 if to != "open" else breaker.consecutive_failures,
        consecutive_successes=0,
        next_attempt_at=at + config.open_timeout_ms / 1000 if to == "open" else None,
    )
