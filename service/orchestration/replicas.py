"""What the reconciler reads off a container and decides about it without I/O: the names and
labels DTMA gives replicas, and why one must go. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from projections import events, groups
from service import status
from service.docker import adapter

CREDENTIALS_LABEL = "dtma.credentials-version"  # which version's env secrets it was given


# Ids are [a-z0-9-], so `_` cannot occur in one: with `-` between the parts, group `a-b` with
# server `c` and group `a` with server `b-c` both named dtma-a-b-c-1.
def container_name(group_id: str, server_id: str, replica: int) -> str:
    return f"dtma_{group_id}_{server_id}_{replica}"


def init_container_name(group_id: str, server_id: str, index: int) -> str:
    return f"dtma_{group_id}_{server_id}_init_{index}"


def network_name(group_id: str) -> str:
    return f"dtma-{group_id}"


@dataclass(frozen=True, slots=True)
class Replica:
    """A container as the reconciler reads its labels."""

    info: adapter.ContainerInfo
    group_id: str
    server_id: str
    replica: int
    generation: int


def as_replica(info: adapter.ContainerInfo) -> Replica | None:
    labels = info.labels
    try:
        return Replica(
            info,
            labels["dtma.group"],
            labels["dtma.server"],
            int(labels["dtma.replica"]),
            int(labels.get("dtma.generation", "0")),
        )
    except (KeyError, ValueError):
        return None


def removed_outside(server_id: str, replica: int, container_id: str) -> events.ContainerRemoved:
    """The fact that a replica's container went away without DTMA removing it."""
    return events.ContainerRemoved(
        server_id=server_id,
        replica=replica,
        container_id=container_id,
        reason="removed outside DTMA",
    )


def removed_key(container_id: str) -> str:
    """One key for that fact, whether the listener or the reconciler notices it first."""
    return f"removed:{container_id}"


def removal_reason(replica: Replica, desired: groups.GroupsState) -> str | None:
    """Why this container must go, or None if it is wanted as it is."""
    server = desired.servers.get(replica.server_id)
    if server is None or server.group_id != replica.group_id:
        return "server removed" if replica.server_id else "unknown server"
    if replica.replica > server.replicas:
        return "scaled down"
    if replica.generation < server.generation:
        return "replaced by a newer spec or a restart"
    return None


def recovery_reason(models: status.ReadModels, replica: Replica) -> str | None:
    """In a recovery attempt, replicas that exited or fail their probes are replaced."""
    if not replica.info.running:
        return "exited; replaced in a recovery attempt"
    verdict = models.health.replica_health(replica.server_id, replica.replica, replica.info.id)
    if verdict == "unhealthy":
        return "unhealthy; replaced in a recovery attempt"
    return None


def is_healthy(models: status.ReadModels, replica: Replica) -> bool:
    """Running, and passing its probes (or probed by nothing)."""
    server = models.desired.servers.get(replica.server_id)
    if server is None or not replica.info.running:
        return False
    if server.spec.health_check.type == "none":
        return True
    verdict = models.health.replica_health(replica.server_id, replica.replica, replica.info.id)
    return verdict == "healthy"


def wanted_env(models: status.ReadModels, server_id: str) -> str | None:
    """The credentials version a replica's environment should carry (None: no env ones), as
    its `CREDENTIALS_LABEL` spells it."""
    active = models.credentials.of(server_id).active()
    return str(active.version) if active is not None and active.env_secrets() else None
