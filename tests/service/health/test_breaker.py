"""The circuit breaker's pure transitions, as tables."""

from __future__ import annotations

import pytest

from projections.health import BreakerConfig
from service.health.breaker import (
    SETTLED_S,
    Breaker,
    Failure,
    RecoveryRequested,
    Signal,
    Success,
    Tick,
    Transition,
    enter,
    transition,
)

CONFIG = BreakerConfig(failure_threshold=3, recovery_threshold=2, open_timeout_ms=30_000)
DISABLED = CONFIG.model_copy(update={"enabled": False})
CLOSED = Breaker()
OPEN = Breaker(circuit="open", consecutive_failures=3, next_attempt_at=130.0)
HALF_OPEN = Breaker(circuit="half_open")


@pytest.mark.parametrize(
    ("before", "signal", "config", "proposed", "failures", "successes"),
    [
        # closed: failures count up and open the circuit at the threshold
        (CLOSED, Failure(1.0, "exited with code 3"), CONFIG, None, 1, 0),
        (
            Breaker(consecutive_failures=2),
            Failure(1.0, "exited with code 3"),
            CONFIG,
            Transition("open", "3 consecutive failures, the last: exited with code 3"),
            3,
            0,
        ),
        # closed: a pass between crashes does not forgive them, a settled pass does
        (Breaker(consecutive_failures=2), Success(1.0, 2.0), CONFIG, None, 2, 1),
        (Breaker(consecutive_failures=2), Success(1.0, SETTLED_S), CONFIG, None, 0, 1),
        # closed, disabled: counted, never opened
        (Breaker(consecutive_failures=9), Failure(1.0, "x"), DISABLED, None, 10, 0),
        # open: failures are noted but change nothing; the clock decides
        (OPEN, Failure(1.0, "x"), CONFIG, None, 4, 0),
        (OPEN, Success(1.0, 0.0), CONFIG, None, 3, 0),
        (OPEN, Tick(129.9), CONFIG, None, 3, 0),
        (
            OPEN,
            Tick(130.0),
            CONFIG,
            Transition("half_open", "open timeout elapsed; attempting recovery"),
            3,
            0,
        ),
        (OPEN, Tick(1.0), DISABLED, Transition("closed", "circuit breaker disabled"), 3, 0),
        (
            OPEN,
            RecoveryRequested(1.0),
            CONFIG,
            Transition("half_open", "group restart requested; attempting recovery"),
            3,
            0,
        ),
        (CLOSED, RecoveryRequested(1.0), CONFIG, None, 0, 0),
        # half-open: one failure reopens, recovery_threshold passes close
        (
            HALF_OPEN,
            Failure(1.0, "probe timed out"),
            CONFIG,
            Transition("open", "recovery attempt failed: probe timed out"),
            1,
            0,
        ),
        (HALF_OPEN, Success(1.0, 0.0), CONFIG, None, 0, 1),
        (
            Breaker(circuit="half_open", consecutive_successes=1),
            Success(2.0, 1.0),
            CONFIG,
            Transition("closed", "2 consecutive successes in the recovery attempt"),
            0,
            2,
        ),
        (HALF_OPEN, Tick(1.0), CONFIG, None, 0, 0),
    ],
)
def test_transition(
    before: Breaker,
    signal: Signal,
    config: BreakerConfig,
    proposed: Transition | None,
    failures: int,
    successes: int,
) -> None:
    after, called_for = transition(before, signal, config)

    assert called_for == proposed
    assert (after.consecutive_failures, after.consecutive_successes) == (failures, successes)
    assert after.circuit == before.circuit  # only `enter` moves the circuit


def test_a_failure_is_remembered_as_the_last_error_and_check() -> None:
    after, _ = transition(CLOSED, Failure(5.0, "HTTP 503"), CONFIG)

    assert (after.last_error, after.last_check_at) == ("HTTP 503", 5.0)


def test_entering_open_schedules_the_attempt_after_the_open_timeout() -> None:
    opened = enter(Breaker(consecutive_failures=3), "open", 100.0, CONFIG)

    assert (opened.circuit, opened.next_attempt_at, opened.consecutive_failures) == (
        "open",
        130.0,
        3,
    )


@pytest.mark.parametrize("to", ["half_open", "closed"])
def test_entering_another_state_starts_counting_afresh(to: str) -> None:
    entered = enter(
        Breaker(circuit="open", consecutive_failures=3, consecutive_successes=1),
        to,
        1.0,
        CONFIG,  # type: ignore[arg-type]
    )

    assert (entered.circuit, entered.consecutive_failures, entered.consecutive_successes) == (
        to,
        0,
        0,
    )
    assert entered.next_attempt_at is None


def test_a_crash_loop_opens_the_circuit_even_though_probes_pass_between_crashes() -> None:
    breaker, opened = CLOSED, []
    for start in (0.0, 10.0, 20.0):
        breaker, _ = transition(breaker, Success(start + 1, 0.0), CONFIG)
        breaker, proposed = transition(breaker, Failure(start + 3, "exited with code 3"), CONFIG)
        opened.append(proposed)

    assert opened[:2] == [None, None]
    assert opened[2] is not None and opened[2].to == "open"
