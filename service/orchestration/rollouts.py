"""Rolling replacement for env credentials: a replica whose container lacks the wanted
environment gives way to a successor started beside it, or (with fixed host ports) goes first,
one at a time. Pure: the reconciler acts on what these decide."""

from __future__ import annotations

from service import status
from service.orchestration import replicas


def rolling_reason(
    models: status.ReadModels,
    replica: replicas.Replica,
    actual: list[replicas.Replica],
    rolling: set[str],
) -> str | None:
    """Env credentials changed (or were revoked): a replica's container goes once its
    successor, the same replica with the wanted environment started beside it, is healthy.
    A server with fixed host ports cannot run both: there a replica goes first, one at a
    time and only while every other replica is healthy. `rolling` holds the servers of this
    pass that have one going already; the one returned for is added."""
    wanted = replicas.wanted_env(models, replica.server_id)
    server = models.desired.servers.get(replica.server_id)
    if replica.info.labels.get(replicas.CREDENTIALS_LABEL) == wanted or server is None:
        return None
    if not replica.info.running:
        return None
    why = (
        "to drop revoked env credentials"
        if wanted is None
        else f"to take credentials version {wanted}"
    )
    if not server.spec.host_ports:
        successor = next(
            (
                r
                for r in actual
                if (r.server_id, r.replica) == (replica.server_id, replica.replica)
                and r.info.labels.get(replicas.CREDENTIALS_LABEL) == wanted
            ),
            None,
        )
        if successor is None or not replicas.is_healthy(models, successor):
            return None
        return f"replaced by a healthy successor {why}"
    siblings = [r for r in actual if r.server_id == replica.server_id and r is not replica]
    if replica.server_id in rolling or not all(replicas.is_healthy(models, r) for r in siblings):
        return None
    if len(siblings) + 1 < server.replicas:
        return None  # one is already missing: wait for it first
    rolling.add(replica.server_id)
    return f"replaced {why} (one at a time)"


def stale_replica(
    models: status.ReadModels, server_id: str, kept: list[replicas.Replica]
) -> int | None:
    """The replica of `server_id` whose successor starts next: the lowest running one whose
    environment lacks the wanted env credentials; None while a successor is on its way."""
    mine = [r for r in kept if r.server_id == server_id]
    numbers = [r.replica for r in mine]
    if len(set(numbers)) != len(numbers):
        return None  # a successor is already on its way: one at a time
    wanted = replicas.wanted_env(models, server_id)
    stale = sorted(
        (
            r
            for r in mine
            if r.info.running and r.info.labels.get(replicas.CREDENTIALS_LABEL) != wanted
        ),
        key=lambda r: r.replica,
    )
    return stale[0].replica if stale else None
