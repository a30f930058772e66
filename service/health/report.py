"""The facts the health answers are made of: recent failures, current verdicts, the overall
status and the actions the facts call for. Pure; service/api/health.py renders the answers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from projections import health
from service.handling import answers
from service.status import ReadModels

FAILURE_WINDOW = timedelta(hours=1)
"""The report lists container failures of the last hour; older ones are history (the log)."""


def recent_failures(models: ReadModels, since: datetime) -> list[tuple[str, health.FailureRecord]]:
    """Each server's container failures since `since`, by server id, oldest first."""
    return [
        (server_id, f)
        for server_id in sorted(models.desired.servers)
        for f in models.health.failures.get(server_id, ())
        if health.parse_time(f.at) >= since
    ]


def current_verdict(
    models: ReadModels, server_id: str, replica: int, container_id: str | None
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
    models: ReadModels, server_id: str, since: datetime, now: datetime
) -> list[dict[str, Any]]:
    """What an operator should do about a server, each derived from a fact in the log."""
    actions: dict[str, str] = {}  # action -> reason; the newest fact of each kind wins
    limits = models.desired.limits_of(server_id)
    for failure in models.health.failures.get(server_id, ()):
        if health.parse_time(failure.at) < since:
            continue
        if failure.oom_killed:
            # without a limit of its own it ran under DTMA_DEFAULT_MEMORY_MB
            limit = f"{limits.memory_mb} MB" if limits.memory_mb else "the default"
            actions["raise_memory_limit"] = (
                f"replica {failure.replica} was killed for running out of memory "
                f"({limit} limit) at {failure.at}"
            )
        elif failure.exit_code is not None:
            actions["check_logs_and_credentials"] = (
                f"replica {failure.replica} exited with code {failure.exit_code} after it "
                f"started, at {failure.at}: see `docker logs {failure.container_id}`"
            )
        else:
            actions["check_image_and_spec"] = (
                f"replica {failure.replica} could not start: {failure.reason}"
            )
    for instance in models.observed.of(server_id):
        verdict = models.health.replicas.get(server_id, {}).get(instance.replica)
        current = verdict is not None and verdict.container_id == instance.container_id
        if verdict and current and instance.state == "running" and verdict.health == "unhealthy":
            seen = "time out" if verdict.timed_out else f"fail ({verdict.reason})"
            actions["inspect_server"] = (
                f"replica {instance.replica} is running but its probes {seen} since {verdict.since}"
            )
    active = models.credentials.of(server_id).active()
    if active is not None:
        for provider, error in sorted(active.oauth_errors.items()):
            actions["check_oauth_provider"] = (
                f"the {provider} access token could not be obtained ({error}); it is retried "
                "with backoff: check the client, its secret and the refresh token"
            )
        if active.status == "failed":
            actions["check_credentials_injection"] = f"{active.last_error}"
        if active.expires_at is not None and health.parse_time(active.expires_at) < now:
            actions["renew_credentials"] = (
                f"credentials version {active.version} expired at {active.expires_at}: "
                "PUT /credentials/rotate (or let the backend supply new ones)"
            )
    if missing := models.missing_credentials(server_id):
        actions["inject_credentials"] = (
            f"it requires {', '.join(missing)}, which no current credential version holds: "
            "POST /credentials/inject; it starts once they are there"
        )
    view = models.health.circuit(server_id)
    if view.state == "open":
        cause = view.transitions[-1].cause if view.transitions else "failures"
        actions["restart_group_when_fixed"] = (
            f"the circuit is open since {view.opened_at} ({cause}); fix the cause, then "
            f"PUT /container-groups/{models.desired.servers[server_id].group_id}/restart"
        )
    return [
        {"mcpServerId": server_id, "action": action, "reason": reason}
        for action, reason in actions.items()
    ]
