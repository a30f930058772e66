"""MCPServerStatus and the group view, rendered from the read models. Pure."""

from __future__ import annotations

from typing import Any

from projections import containers, groups, specs

LOOPBACK = "127.0.0.1"


def server_status(
    desired: groups.GroupsState, observed: containers.ContainersState, server_id: str
) -> dict[str, Any]:
    server = desired.servers[server_id]
    instances = observed.of(server_id)
    running = [i for i in instances if i.state == "running"]
    # Until probes exist (the health issue), a running replica counts as healthy.
    healthy = len(running)
    return {
        "id": server_id,
        "groupId": server.group_id,
        "image": server.spec.image,
        "desiredReplicas": server.replicas,
        "runningReplicas": len(running),
        "healthyReplicas": healthy,
        "status": lifecycle(server.replicas, instances),
        "health": health(server.replicas, healthy, instances),
        "circuitState": "closed",
        "endpoints": [
            e for e in (endpoint(i, server.spec.port, server.spec.path) for i in running) if e
        ],
        "instances": [instance_json(i) for i in instances],
    }


def endpoint(instance: containers.Instance, port: int, path: str) -> str | None:
    """Where the host reaches a replica: its loopback port, or on an internal network its IP."""
    if instance.host_port:
        return f"http://{LOOPBACK}:{instance.host_port}{path}"
    if instance.address:
        return f"http://{instance.address}:{port}{path}"
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


def health(desired: int, healthy: int, instances: list[containers.Instance]) -> str:
    if desired == 0 or not instances:
        return "unknown"
    if healthy >= desired:
        return "healthy"
    return "degraded" if healthy else "unhealthy"


def instance_json(instance: containers.Instance) -> dict[str, Any]:
    return {
        "replica": instance.replica,
        "containerId": instance.container_id,
        "containerName": instance.container_name,
        "state": instance.state,
        "health": "healthy" if instance.state == "running" else "unhealthy",
        "restartCount": instance.restart_count,
        "startedAt": instance.started_at,
        "exitCode": instance.exit_code,
        "oomKilled": instance.oom_killed,
        "reason": instance.reason,
    }


def group_view(
    desired: groups.GroupsState, observed: containers.ContainersState, group_id: str
) -> dict[str, Any]:
    group = desired.groups[group_id]
    servers = [server_status(desired, observed, s) for s in group.servers]
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
        "network": {"name": observed.networks.get(group.id), "internal": group.internal},
        "resourceLimits": limits_json(group.limits),
        "status": status,
        "mcpServers": servers,
    }


def limits_json(limits: specs.Limits | None) -> dict[str, Any] | None:
    if limits is None:
        return None
    return {"memoryMb": limits.memory_mb, "cpus": limits.cpus, "pids": limits.pids}
