"""MCPServerStatus and a group's status, from the read models. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from projections import containers, credentials, groups, health, images
from projections import runner as projections_runner
from service.handling import answers

LOOPBACK = "127.0.0.1"
DEFAULT_API_URL = f"http://{LOOPBACK}:30000"
WILDCARDS = ("", "0.0.0.0", "::")


def api_url(host: str, port: int) -> str:
    """Where this host reaches DTMA's own API (a wildcard address is reached on the loopback)."""
    host = LOOPBACK if host in WILDCARDS else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def stdio_endpoint(base: str, server_id: str, replica: int) -> str:
    """A stdio replica's MCP endpoint: its bridge, on DTMA's API (service/api/stdio.py)."""
    return f"{base}/stdio/{server_id}/{replica}/mcp"


@dataclass(frozen=True, slots=True)
class ReadModels:
    """The three read models a status is made of, taken at one position."""

    desired: groups.GroupsState
    observed: containers.ContainersState
    health: health.HealthState
    credentials: credentials.CredentialsState = credentials.CredentialsState()
    images: images.ImagesState = images.ImagesState()
    api_url: str = DEFAULT_API_URL  # where stdio replicas are served (`stdio_endpoint`)
    # server id -> bytes done and total of the image it waits for: in memory, not in the log
    pulling: Mapping[str, tuple[int, int | None]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        runner: projections_runner.ProjectionRunner,
        api_url: str = DEFAULT_API_URL,
        pulling: Mapping[str, tuple[int, int | None]] | None = None,
    ) -> ReadModels:
        return cls(
            runner.state(groups.PROJECTION),
            runner.state(containers.PROJECTION),
            runner.state(health.PROJECTION),
            runner.state(credentials.PROJECTION),
            runner.state(images.PROJECTION),
            api_url,
            dict(pulling or {}),
        )

    def endpoint(self, server: groups.ServerState, instance: containers.Instance) -> str | None:
        """A running replica's MCP endpoint: its own, or for a stdio server its bridge."""
        if server.spec.transport == "stdio":
            return stdio_endpoint(self.api_url, server.spec.id, instance.replica)
        return endpoint(instance, server.spec.port, server.spec.path)

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

    def instance_health(
        self, server_id: str, instance: containers.Instance
    ) -> answers.ReplicaVerdict:
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
        if verdict is None:
            return "starting"
        return "healthy" if verdict == "healthy" else "unhealthy"

    def healthy_replicas(self, server_id: str) -> int:
        return sum(
            1
            for i in self.observed.of(server_id)
            if self.instance_health(server_id, i) == "healthy"
        )


def server_status(models: ReadModels, server_id: str) -> answers.McpServerStatus:
    server = models.desired.servers[server_id]
    instances = models.observed.of(server_id)
    running = [i for i in instances if i.state == "running"]
    healthy = models.healthy_replicas(server_id)
    circuit = models.health.circuit(server_id).state
    pin = models.images.pin(server_id, server.declared_generation, server.spec.image)
    pull_failed = (
        models.images.failure(server_id, server.declared_generation)
        if len(running) < server.replicas
        else None
    )
    return answers.McpServerStatus(
        id=server_id,
        group_id=server.group_id,
        image=server.spec.image,
        image_digest=pin.digest if pin else None,
        desired_replicas=server.replicas,
        running_replicas=len(running),
        healthy_replicas=healthy,
        # a pull that failed is why replicas are missing: no container could be made
        status="failed" if pull_failed else lifecycle(server.replicas, instances),
        reason=pull_failed.reason if pull_failed else None,
        health="unhealthy" if circuit == "open" else overall(server.replicas, healthy, instances),
        circuit_state=circuit,
        endpoints=[e for e in (models.endpoint(server, i) for i in running) if e],
        instances=[instance_status(i, models.instance_health(server_id, i)) for i in instances]
        + pulling_status(server.replicas, instances, models.pulling.get(server_id)),
    )


def endpoint(instance: containers.Instance, port: int, path: str) -> str | None:
    """Where DTMA reaches a replica: its address on its group's network when one is recorded
    (network reach, an internal network, an unpublished port), else its loopback port."""
    if instance.address:
        return f"http://{instance.address}:{port}{path}"
    if instance.host_port:
        return f"http://{LOOPBACK}:{instance.host_port}{path}"
    return None


def lifecycle(desired: int, instances: list[containers.Instance]) -> answers.Lifecycle:
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


def overall(
    desired: int, healthy: int, instances: list[containers.Instance]
) -> answers.ServerHealth:
    if desired == 0 or not instances:
        return "unknown"
    if healthy >= desired:
        return "healthy"
    return "degraded" if healthy else "unhealthy"


def instance_status(
    instance: containers.Instance, health: answers.ReplicaVerdict
) -> answers.InstanceStatus:
    return answers.InstanceStatus(
        replica=instance.replica,
        container_id=instance.container_id,
        container_name=instance.container_name,
        state=instance.state,
        health=health,
        restart_count=instance.restart_count,
        started_at=instance.started_at,
        exit_code=instance.exit_code,
        oom_killed=instance.oom_killed,
        reason=instance.reason,
    )


def pulling_status(
    desired: int, instances: list[containers.Instance], pulling: tuple[int, int | None] | None
) -> list[answers.InstanceStatus]:
    """The replicas that have no container yet because their image is being pulled."""
    if pulling is None:
        return []
    present = {i.replica for i in instances}
    return [
        answers.InstanceStatus(
            replica=replica,
            container_id=None,
            container_name=None,
            state="pulling",
            health="starting",
            restart_count=0,
            started_at=None,
            exit_code=None,
            oom_killed=False,
            reason=None,
            pull_bytes_done=pulling[0],
            pull_bytes_total=pulling[1],
        )
        for replica in range(1, desired + 1)
        if replica not in present
    ]


GroupStatus = Literal["empty", "starting", "running", "degraded", "failed"]


def group_status(servers: list[answers.McpServerStatus]) -> GroupStatus:
    """Running when every server runs; else the worst of failed, degraded and starting."""
    states = {s.status for s in servers}
    if not servers:
        return "empty"
    if states == {"running"}:
        return "running"
    return "failed" if "failed" in states else "degraded" if "degraded" in states else "starting"
