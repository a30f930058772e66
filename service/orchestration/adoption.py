"""After a crash: a replica's container that runs though the log never recorded it started (the
service died between Docker's start and the append) is adopted by recording what happened to
it. Pure: the reconciler appends what `unrecorded` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from projections import containers, events

if TYPE_CHECKING:
    from service.orchestration.replicas import Replica


def unrecorded(
    replica: Replica,
    instance: containers.Instance | None,
    credentials_version: str | None,
    wanted_credentials: str | None,
    by_network: bool = False,
) -> list[events.Event]:
    """The events the log lacks for a kept container: none if it knows it running.

    `instance` is what the log holds for that replica; `credentials_version` the container's
    label and `wanted_credentials` the version its environment should carry. A container other
    than the recorded one is adopted only where it would have replaced it: no instance, a
    failed one, or a successor that carries the wanted credentials where the recorded one
    does not. (An older container that a recorded successor replaced is not re-adopted.)
    `by_network`: DTMA reaches replicas at their network address, not at a loopback port.
    """
    info = replica.info
    if not info.running:
        return []
    if instance is not None and instance.container_id == info.id:
        return [_started(replica, by_network)] if instance.state == "created" else []
    recorded = (
        str(instance.credentials_version)
        if instance is not None and instance.credentials_version is not None
        else None
    )
    successor = credentials_version == wanted_credentials != recorded
    if instance is None or instance.state == "failed" or successor:
        return [_created(replica, credentials_version), _started(replica, by_network)]
    return []


def _created(replica: Replica, credentials_version: str | None) -> events.ContainerCreated:
    return events.ContainerCreated(
        group_id=replica.group_id,
        server_id=replica.server_id,
        replica=replica.replica,
        container_id=replica.info.id,
        name=replica.info.name,
        generation=replica.generation,
        credentials_version=int(credentials_version) if credentials_version else None,
    )


def _started(replica: Replica, by_network: bool) -> events.ContainerStarted:
    info = replica.info
    return events.ContainerStarted(
        server_id=replica.server_id,
        replica=replica.replica,
        container_id=info.id,
        host_port=info.host_port,
        address=info.ip_address if by_network or info.host_port is None else None,
    )
