"""One replica's health as its probe results make it: a pure state machine.

A new container is `starting`: its first passing probe makes it healthy, and failures during the
server's start period are not held against it. After that, `failure_threshold` consecutive
failures make it unhealthy and `recovery_threshold` consecutive passes make it healthy again.
`observe` says when the verdict changes, which is the only time the monitor writes to the log.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from projections import specs

Health = Literal["starting", "healthy", "unhealthy"]


@dataclass(frozen=True, slots=True)
class ReplicaProbes:
    started_at: float
    health: Health = "starting"
    failures: int = 0
    successes: int = 0
    healthy_since: float | None = None

    def in_start_period(self, at: float, check: specs.HealthCheck) -> bool:
        return self.health == "starting" and at - self.started_at < check.start_period_ms / 1000


def observe(
    state: ReplicaProbes, passed: bool, at: float, check: specs.HealthCheck
) -> tuple[ReplicaProbes, Health | None]:
    """The replica after one probe result, and its new health if that changed."""
    if passed:
        successes = state.successes + 1
        needed = 1 if state.health == "starting" else check.recovery_threshold
        if state.health != "healthy" and successes >= needed:
            return ReplicaProbes(state.started_at, "healthy", 0, successes, at), "healthy"
        return replace(state, failures=0, successes=successes), None
    if state.in_start_period(at, check):
        return replace(state, successes=0), None
    failures = state.failures + 1
    if state.health != "unhealthy" and failures >= check.failure_threshold:
        return ReplicaProbes(state.started_at, "unhealthy", failures, 0, None), "unhealthy"
    return replace(state, failures=failures, successes=0), None
