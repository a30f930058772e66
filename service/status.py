"""MCPServerStatus and the group view, rendered from the read models. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections import containers, credentials, groups, health, specs
from projections.runner import ProjectionRunner

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ReadModels:
    """The three read models a status is made of, taken at one position."""

    desired: groups.GroupsState
    observed: containers.ContainersState
    health: health.HealthState
    credentials: credentials.CredentialsState = credentials.CredentialsState()

    @classmethod
    def of(cls, runner: ProjectionRunner) -> ReadModels:
        return cls(
            runner.state(groups.PROJECTION),
            runner.state(containers.PROJECTION),
            runner.state(health.PROJECTION),
            runner.state(credentials.PROJECTION),
        )

    def missing_credentials(self, server_id: str) -> list[str]:
        """Names the server's `credentialRequirements` ask for that no current version has."""
        server = self.desired.servers[server_id]
        active = self.credentials.of(server_id).active()
        have = set(active.names) if active else set()
        return [r.name for r in server.spec.credential_requirements if r.name not in have]

    def credentials_in_place(self, server_id: str, instance: containers.Instance) -> bool:
        """The current file credentials are in this replica's container (or there are none)."""
        active = self.credentials.of(server_id).active()
        return active is None or active.in_place(instance.replica, instance.container_id)

    def instance_health(self, server_id: str, instance: containers.Instance) -> str:
        """ "healthy", "unhealthy" or "starting": the probes' verdict on a running replica
        (`none` trusts Docker); a replica that is not running is unhealthy."""
        if instance.state == "created":
            return "starting"
        if instance.state != "running":
            return "unhealthy"
        if not self.credentials_in_place(server_id, instance):
            return "starting"  # not healthy before its credentials are in
        if self.desired.servers[server_id].spec.health_check.type == "none":
            return "healthy"
        verdict = self.health.replica_health(server_id, instance.replica, instance.container_id)
        return verdict or "starting"

    def healthy_replicas(self, server_id: str) -> int:
        return sum(
            1
            for i in self.observed.of(server_id)
            if self.instance_health(server_id, i) == "healthy"
        )


def server_status(models: ReadModels, server_id: str) -> dict[str, Any]:
    server = models.desired.servers[server_id]
    instances = models.observed.of(server_id)
    running = [i for i in instances if i.state == "running"]
    healthy = models.healthy_replicas(server_id)
    circuit = models.health.circuit(server_id).state
    return {
        "id": server_id,
        "groupId": server.group_id,
        "image": server.spec.image,
        "desiredReplicas": server.replicas,
        "runningReplicas": len(running),
        "healthyReplicas": healthy,
        "status": lifecycle(server.replicas, instances),
        "health": "unhealthy"
        if circuit == "open"
        else overall(server.replicas, healthy, instances),
        "circuitState": circuit,
        "endpoints": [
            e for e in (endpoint(i, server.spec.port, server.spec.path) for i in running) if e
        ],
        "instances": [instance_json(i, models.instance_health(server_id, i)) for i in instances],
    }


def endpoint(instance: containers.Instance, port: int, path: str) -> str | None:
    """Where DTMA reaches a replica: its address on its group's network when one is recorded
    (network reach, an internal network, an unpublished port), else its loopback port."""
    if instance.address:
        return f"http://{instance.address}:{port}{path}"
    if instance.host_port:
        return f"http://{LOOPBACK}:{instance.host_port}{path}"
    return None


def lifecycle(desired: int, instances: list[containers.Instance]) -> str:
    running = sum(1 for i in instances if i.state == "running")
    if desired == 0:
        return "stopped" if running == 0 else "running"
    if running >= desired:
        return "running"
    if running > 0:
        return "degraded"
    if any(i.state in ("failed", "exited") for i in instances):
        return "failed"
    return "starting" if instances else "pending"


def overall(desired: int, healthy: int, instances: list[containers.Instance]) -> str:
    if desired == 0 or not instances:
        return "unknown"
    if healthy >= desired:
        return "healthy"
    return "degraded" if healthy else "unhealthy"


def instance_json(instance: containers.Instance, health: str) -> dict[str, Any]:
    return {
        "replica": instance.replica,
        "containerId": instance.container_id,
        "containerName": instance.container_name,
        "state": instance.state,
        "health": health,
        "restartCount": instance.restart_count,
        "startedAt": instance.started_at,
        "exitCode": instance.exit_code,
        "oomKilled": instance.oom_killed,
        "reason": instance.reason,
    }


def group_view(models: ReadModels, group_id: str) -> dict[str, Any]:
    group = models.desired.groups[group_id]
    servers = [server_status(models, s) for s in group.servers]
    states = {s["status"] for s in servers}
    status = (
        "empty"
        if not servers
        else "running"
        if states == {"running"}
        else (
            "failed" if "failed" in states else "degraded" if "degraded" in states else "starting"
        )
    )
    return {
        "id": group.id,
        "name": group.name,
        "network": {"name": models.observed.networks.get(group.id), "internal": group.internal},
        "resourceLimits": limits_json(group.limits),
        "status": status,
        "mcpServers": servers,
    }


def limits_json(limits: specs.Limits | None) -> dict[str, Any] | None:
    if limits is None:
        return None
    return {"memoryMb": limits.memory_mb, "cpus": limits.cpus, "pids": limits.pids}
