"""What must hold after a crash and a restart, checked against the real parts: the log as stored,
Docker as it runs, the service's API, its persisted projections and a fold from zero."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from eventstore.records import RecordedEvent
from eventstore.store import EventStore
from projections import ALL
from service.docker.adapter import ContainerInfo, DockerAdapter
from tests.support.service_process import Service
from tests.support.waiting import wait_until

PAGE = 1_000


async def read_log(database_url: str) -> list[RecordedEvent]:
    """Every event in the database, in order, read straight from the store."""
    store = await EventStore.open(database_url)
    try:
        log: list[RecordedEvent] = []
        while page := await store.read_all(log[-1].position if log else 0, PAGE):
            log.extend(page)
        return log
    finally:
        await store.close()


async def owned_containers(
    docker: DockerAdapter, owner_labels: dict[str, str]
) -> list[ContainerInfo]:
    return [
        c
        for c in await docker.list_managed(owner_labels)
        if all(c.labels.get(k) == v for k, v in owner_labels.items())
    ]


async def owned_networks(docker: DockerAdapter, owner_labels: dict[str, str]) -> set[str]:
    return {
        name
        for name, labels in await docker.list_managed_networks()
        if all(labels.get(k) == v for k, v in owner_labels.items())
    }


def replica_key(container: ContainerInfo) -> tuple[str, str, int]:
    labels = container.labels
    return labels["dtma.group"], labels["dtma.server"], int(labels["dtma.replica"])


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


def desired_replicas(status: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Every replica a `GET /mcp-servers/status` answer wants, as (group, server, replica)."""
    return sorted(
        (s["groupId"], s["id"], r)
        for s in status["mcpServers"]
        for r in range(1, s["desiredReplicas"] + 1)
    )


async def docker_mismatch(
    http: aiohttp.ClientSession,
    service: Service,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    group_ids: list[str],
    healthy: bool,
) -> str | None:
    """How Docker and the service's status differ from the desired state, or None if Docker
    runs exactly the desired replicas (one container each, none extra), each group that exists
    has its network and no other network is left, and the status reports exactly those
    containers running (and, if asked, healthy)."""
    code, status = await get_json(http, f"{service.url}/mcp-servers/status")
    assert code == 200, status
    containers = await owned_containers(docker, owner_labels)
    found = sorted((*replica_key(c), c.running) for c in containers)
    if found != [(*key, True) for key in desired_replicas(status)]:
        return f"Docker runs {found}, the desired replicas are {desired_replicas(status)}"
    groups = [
        g
        for g in group_ids
        if (await get_json(http, f"{service.url}/container-groups/{g}"))[0] == 200
    ]
    networks = await owned_networks(docker, owner_labels)
    if networks != {f"dtma-{g}" for g in groups}:
        return f"networks {sorted(networks)} for the groups {groups}"
    for server in status["mcpServers"]:
        ids = sorted(i["containerId"] for i in server["instances"] if i["state"] == "running")
        mine = sorted(c.id for c in containers if c.labels["dtma.server"] == server["id"])
        counts = (server["runningReplicas"], server["healthyReplicas"] if healthy else None)
        wanted = (server["desiredReplicas"], server["desiredReplicas"] if healthy else None)
        if ids != mine or counts != wanted:
            return f"the status of {server['id']} is {server} while Docker runs {mine}"
    return None


async def docker_matches_desired(
    http: aiohttp.ClientSession,
    service: Service,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    group_ids: list[str],
    *,
    within: float,
    healthy: bool = False,
) -> dict[str, ContainerInfo]:
    """Wait until `docker_mismatch` finds nothing; the running containers by id."""
    last: list[str | None] = [None]

    async def matched() -> bool:
        last[0] = await docker_mismatch(http, service, docker, owner_labels, group_ids, healthy)
        return last[0] is None

    try:
        await wait_until(matched, within)
    except TimeoutError:
        raise AssertionError(f"not converged within {within:g} s: {last[0]}") from None
    return {c.id: c for c in await owned_containers(docker, owner_labels)}


async def assert_chain_verifies(http: aiohttp.ClientSession, service: Service) -> None:
    status, report = await get_json(http, f"{service.url}/audit/verify")
    assert status == 200 and report["ok"] is True, report
    assert report["checked"] == report["headPosition"], report


async def assert_persisted_projections_equal_a_fold_from_zero(
    service: Service, database_url: str
) -> int:
    """After a graceful stop: the states the service's runner persisted (its live states, which
    it restored from a snapshot taken before the crash and then followed) equal `dtma replay`,
    a fold of the log from zero up to the same position. Returns that position."""
    store = await EventStore.open(database_url)
    try:
        snapshots = {p.name: await store.load_snapshot(p.name) for p in ALL}
    finally:
        await store.close()
    positions = {s.position for s in snapshots.values() if s is not None}
    assert None not in snapshots.values() and len(positions) == 1, snapshots
    [position] = positions
    replayed = await service.cli("replay", "--until", str(position))
    assert replayed["position"] == position
    for projection in ALL:
        snapshot = snapshots[projection.name]
        assert snapshot is not None
        live = projection.state_type.model_validate_json(snapshot.state_json)
        from_zero = projection.state_type.model_validate(replayed["state"][projection.name])
        assert live == from_zero, f"projection {projection.name} differs from a fold from zero"
    return position


async def assert_cli_verifies_the_chain(service: Service) -> None:
    report = await service.cli("audit", "verify")
    assert report["ok"] is True and report["checked"] == report["headPosition"], report


async def assert_after_stop(service: Service, database_url: str) -> None:
    """What a stopped service's database must show: both checks above, side by side."""
    await asyncio.gather(
        assert_persisted_projections_equal_a_fold_from_zero(service, database_url),
        assert_cli_verifies_the_chain(service),
    )
