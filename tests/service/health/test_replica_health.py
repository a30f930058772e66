"""One replica's health from its probe results, as tables."""

from __future__ import annotations

import pytest

from projections.specs import HealthCheck
from service.health.replica_health import Health, ReplicaProbes, observe

CHECK = HealthCheck(failure_threshold=3, recovery_threshold=2, start_period_ms=10_000)
STARTING = ReplicaProbes(started_at=0.0)


@pytest.mark.parametrize(
    ("before", "passed", "at", "health", "changed"),
    [
        (STARTING, True, 1.0, "healthy", "healthy"),  # the first pass makes it healthy
        (STARTING, False, 9.9, "starting", None),  # failures in the start period don't count
        (ReplicaProbes(0.0, failures=2), False, 10.0, "unhealthy", "unhealthy"),
        (ReplicaProbes(0.0, failures=1), False, 10.0, "starting", None),
        (ReplicaProbes(0.0, "healthy", failures=1), False, 2.0, "healthy", None),
        (ReplicaProbes(0.0, "healthy", failures=2), False, 2.0, "unhealthy", "unhealthy"),
        (ReplicaProbes(0.0, "healthy", failures=2), True, 2.0, "healthy", None),
        (ReplicaProbes(0.0, "unhealthy", failures=5), True, 2.0, "unhealthy", None),
        (ReplicaProbes(0.0, "unhealthy", successes=1), True, 2.0, "healthy", "healthy"),
        (ReplicaProbes(0.0, "unhealthy", successes=1), False, 2.0, "unhealthy", None),
    ],
)
def test_observe(
    before: ReplicaProbes, passed: bool, at: float, health: Health, changed: Health | None
) -> None:
    after, change = observe(before, passed, at, CHECK)

    assert (after.health, change) == (health, changed)


def test_a_failure_between_passes_resets_the_recovery_count() -> None:
    state = ReplicaProbes(0.0, "unhealthy")
    for passed in (True, False, True):
        state, change = observe(state, passed, 20.0, CHECK)
        assert change is None

    assert state.health == "unhealthy"


def test_healthy_since_is_when_it_became_healthy() -> None:
    state, _ = observe(STARTING, True, 4.0, CHECK)
    state, _ = observe(state, True, 9.0, CHECK)

    assert state.healthy_since == 4.0
