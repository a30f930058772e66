"""The facts the health answers are made of: recent failures, current verdicts, the overall
status and the actions the facts call for. Pure; service/api/health.py renders the answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from eventstore import times
from projections import credentials, health, specs
from service import status
from service.handling import answers

FAILURE_WINDOW = timedelta(hours=1)
"""The report lists container failures of the last hour; older ones are history (the log)."""


def recent_failures(
    models: status.ReadModels, since: datetime
) -> list[tuple[str, health.FailureRecord]]:
    """Each server's container failures since `since`, by server id, oldest first."""
    return [
        (server_id, f)
        for server_id in sorted(models.desired.servers)
        for f in models.health.failures.get(server_id, ())
        if times.parse_time(f.at) >= since
    ]


def current_verdict(
    models: status.ReadModels, server_id: str, replica: int, container_id: str | None
) -> health.ReplicaHealth | None:
    """The probes' last verdict on a replica, if it was on the container it runs now."""
    verdict = models.health.replicas.get(server_id, {}).get(replica)
    return verdict if verdict and verdict.container_id == container_id else None


def overall_status(
    servers: Sequence[answers.McpServerStatus],
) -> Literal["healthy", "degraded", "unhealthy"]:
    """Healthy if every wanted server is; unhealthy if none is; degraded in between."""
    wanted = [s for s in servers if s.desired_replicas > 0]
    healthy = [s for s in wanted if s.health == "healthy"]
    if len(healthy) == len(wanted):
        return "healthy"
    return "degraded" if healthy or any(s.health == "degraded" for s in wanted) else "unhealthy"


def recommended_actions(
    models: status.ReadModels, server_id: str, since: datetime, now: datetime
) -> list[dict[str, Any]]:
    """What an operator should do about a server, each derived from a fact in the log."""
    facts = ServerFacts(models, server_id, since, now)
    actions: dict[str, str] = {}  # action -> reason; the newest fact of each kind wins
    for rule in RULES:
        actions.update(rule(facts))
    return [
        {"mcpServerId": server_id, "action": action, "reason": reason}
        for action, reason in actions.items()
    ]


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the rules read: one server's read models, the report's window and its time."""

    models: status.ReadModels
    server_id: str
    since: datetime
    now: datetime

    def credentials(self) -> credentials.Version | None:
        return self.models.credentials.of(self.server_id).active()


Advice = Iterator[tuple[str, str]]  # (action, reason), oldest fact first


def failures_in_window(facts: ServerFacts) -> Advice:
    limits = facts.models.desired.limits_of(facts.server_id)
    for failure in facts.models.health.failures.get(facts.server_id, ()):
        if times.parse_time(failure.at) >= facts.since:
            yield _failure_advice(failure, limits)


def _failure_advice(failure: health.FailureRecord, limits: specs.Limits) -> tuple[str, str]:
    if failure.oom_killed:
        # without a limit of its own it ran under DTMA_DEFAULT_MEMORY_MB
        limit = f"{limits.memory_mb} MB" if limits.memory_mb else "the default"
        return "raise_memory_limit", (
            f"replica {failure.replica} was killed for running out of memory "
            f"({limit} limit) at {failure.at}"
        )
    if failure.exit_code is not None:
        return "check_logs_and_credentials", (
            f"replica {failure.replica} exited with code {failure.exit_code} after it "
            f"started, at {failure.at}: see `docker logs {failure.container_id}`"
        )
    return "check_image_and_spec", f"replica {failure.replica} could not start: {failure.reason}"


def unhealthy_replicas(facts: ServerFacts) -> Advice:
    verdicts = facts.models.health.replicas.get(facts.server_id, {})
    for instance in facts.models.observed.of(facts.server_id):
        verdict = verdicts.get(instance.replica)
        current = verdict is not None and verdict.container_id == instance.container_id
        if verdict and current and instance.state == "running" and verdict.health == "unhealthy":
            seen = "time out" if verdict.timed_out else f"fail ({verdict.reason})"
            reason = f"replica {instance.replica} is running but its probes {seen}"
            yield "inspect_server", f"{reason} since {verdict.since}"


def oauth_errors(facts: ServerFacts) -> Advice:
    active = facts.credentials()
    failed = sorted(active.oauth_errors.items()) if active is not None else []
    for provider, error in failed:
        reason = (
            f"the {provider} access token could not be obtained ({error}); it is retried "
            "with backoff: check the client, its secret and the refresh token"
        )
        yield "check_oauth_provider", reason


def failed_injection(facts: ServerFacts) -> Advice:
    active = facts.credentials()
    if active is not None and active.status == "failed":
        yield "check_credentials_injection", f"{active.last_error}"


def expired_credentials(facts: ServerFacts) -> Advice:
    active = facts.credentials()
    if active is not None and active.expired(facts.now):
        reason = (
            f"credentials version {active.version} expired at {active.expires_at}: "
            "PUT /credentials/rotate (or let the backend supply new ones)"
        )
        yield "renew_credentials", reason


def missing_credentials(facts: ServerFacts) -> Advice:
    if missing := facts.models.missing_credentials(facts.server_id):
        reason = (
            f"it requires {', '.join(missing)}, which no current credential version holds: "
            "POST /credentials/inject; it starts once they are there"
        )
        yield "inject_credentials", reason


def failed_pull(facts: ServerFacts) -> Advice:
    server = facts.models.desired.servers[facts.server_id]
    failure = facts.models.images.failure(facts.server_id, server.declared_generation)
    if failure is not None:
        reason = (
            f"image {failure.image} could not be pulled at {failure.at} ({failure.reason}); "
            "it is retried with backoff: check the reference and POST /registries"
        )
        yield "check_image_or_registry_credentials", reason


def open_circuit(facts: ServerFacts) -> Advice:
    view = facts.models.health.circuit(facts.server_id)
    if view.state == "open":
        cause = view.transitions[-1].cause if view.transitions else "failures"
        group_id = facts.models.desired.servers[facts.server_id].group_id
        reason = (
            f"the circuit is open since {view.opened_at} ({cause}); fix the cause, then "
            f"PUT /container-groups/{group_id}/restart"
        )
        yield "restart_group_when_fixed", reason


# In the order the report lists their actions.
RULES: tuple[Callable[[ServerFacts], Advice], ...] = (
    failures_in_window,
    unhealthy_replicas,
    oauth_errors,
    failed_injection,
    expired_credentials,
    missing_credentials,
    failed_pull,
    open_circuit,
)
