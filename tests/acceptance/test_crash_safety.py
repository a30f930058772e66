"""Crash safety: `kill -9` the service in the middle of 200 concurrent commands, or in the middle
of deploying a group of five servers, and start it again on the same database. Nothing
acknowledged is lost, nothing is half-written or written twice, the projections equal a fold
of the log from zero, Docker runs exactly the desired replicas and the hash chain verifies."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from eventstore.records import RecordedEvent
from service.docker.adapter import DockerAdapter
from tests.acceptance.conftest import sweep
from tests.conftest import AUTH
from tests.support import crash_checks as checks
from tests.support.service_process import Service

pytestmark = pytest.mark.docker

STORM = 200
KILL_AFTER = 60  # answers
CONVERGE_S = 90.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield session


@dataclass
class Command:
    """One request of the storm, and what became of it."""

    key: str  # its Idempotency-Key, also its X-Request-ID (the events' correlation id)
    method: str
    path: str
    body: dict[str, Any]
    produces: tuple[str, ...]  # the event types it appends, in order, if it is carried out
    status: int | None = None  # None: no answer came (the service died first)
    position: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        return self.status is not None and 400 <= self.status < 500

    def headers(self) -> dict[str, str]:
        return {"Idempotency-Key": self.key, "X-Request-ID": self.key}


def storm(run: str, image: str, scaled: list[str]) -> list[Command]:
    """200 commands, shuffled: two deploys of new groups (two servers, one with a replica), a
    group create, 24 scales of two already deployed servers to 0-2 replicas, and circuit-breaker
    configurations of distinct servers for the rest. Few groups: each is a Docker network."""
    commands = [
        Command(
            f"{run}-deploy-{n}",
            "POST",
            "/mcp-servers/deploy",
            {
                "groupId": f"d{n}-{run}",
                "mcpServers": [
                    {"id": f"d{n}a-{run}", "image": image, "replicas": 1},
                    {"id": f"d{n}b-{run}", "image": image, "replicas": 0},
                ],
            },
            ("GroupDeclared", "ServerDeclared", "ServerDeclared"),
        )
        for n in (1, 2)
    ]
    commands.append(
        Command(
            f"{run}-create", "POST", "/container-groups", {"id": f"c1-{run}"}, ("GroupDeclared",)
        )
    )
    commands += [
        Command(
            f"{run}-scale-{n}",
            "PUT",
            "/mcp-servers/scale",
            {"mcpServerId": scaled[n % len(scaled)], "replicas": n % 3},
            ("ReplicasScaled",),
        )
        for n in range(24)
    ]
    commands += [
        Command(
            f"{run}-breaker-{n}",
            "POST",
            "/health/circuit-breaker",
            {"mcpServerId": f"cb{n}-{run}", "failureThreshold": 1 + n, "openTimeout": 1000 * n},
            ("CircuitBreakerConfigured",),
        )
        for n in range(STORM - len(commands))
    ]
    random.Random(run).shuffle(commands)
    return commands


async def send(session: aiohttp.ClientSession, url: str, command: Command) -> bool:
    """Send it; record the answer. False if none came."""
    try:
        async with session.request(
            command.method, url + command.path, json=command.body, headers=command.headers()
        ) as response:
            answer = await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return False
    command.status = response.status
    if command.acknowledged:
        command.position = answer["position"]
    return True


async def fire_and_kill(service: Service, commands: list[Command]) -> None:
    """Send every command at once; `kill -9` the service as the KILL_AFTER-th answer arrives."""
    answered = 0

    async def one(command: Command) -> None:
        nonlocal answered
        if await send(session, service.url, command):
            answered += 1
            if answered == KILL_AFTER:
                service.kill_now()  # no await between the answer and the kill

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=AUTH, connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one(c) for c in commands))
    await service.wait()


def by_key(log: list[RecordedEvent]) -> dict[str, list[RecordedEvent]]:
    found: dict[str, list[RecordedEvent]] = defaultdict(list)
    for event in log:
        key = event.metadata.get("idempotency_key")
        if key is not None:
            found[key].append(event)
    return found


def assert_all_or_nothing(commands: list[Command], log: list[RecordedEvent]) -> None:
    """Acknowledged: all its events, once, ending at the position it was told. Refused: none.
    No answer: all or none. Each command's events are one append: consecutive positions."""
    found = by_key(log)
    for command in commands:
        mine = found.get(command.key, [])
        if command.acknowledged or mine:
            assert tuple(e.type for e in mine) == command.produces, (command, mine)
            positions = [e.position for e in mine]
            assert positions == list(range(positions[0], positions[0] + len(mine))), command
            assert {e.metadata["correlation_id"] for e in mine} == {command.key}
        if command.acknowledged:
            assert mine[-1].position == command.position, command
        if command.refused:
            assert not mine, command


async def resend(http: aiohttp.ClientSession, url: str, commands: list[Command]) -> list[Command]:
    """Send the commands again, with the same keys, as fresh Command records."""
    again = [Command(c.key, c.method, c.path, c.body, c.produces) for c in commands]
    await asyncio.gather(*(send(http, url, c) for c in again))
    return again


async def test_a_kill_9_amid_200_concurrent_commands_loses_nothing_acknowledged(
    tmp_path: Path,
    database_url: str,
    docker: DockerAdapter,
    mcp_image: str,
    owner_labels: dict[str, str],
    http: aiohttp.ClientSession,
) -> None:
    run = secrets.token_hex(3)
    # snapshots during the storm: the restart resumes from one and folds the tail
    service = Service(database_url, tmp_path, owner_labels, DTMA_SNAPSHOT_EVERY="25")
    base = [f"base-{run}", f"d1-{run}", f"d2-{run}", f"c1-{run}"]
    try:
        await service.start(http)
        setup = {
            "groupId": base[0],
            "mcpServers": [
                {"id": f"ba-{run}", "image": mcp_image, "replicas": 1},
                {"id": f"bb-{run}", "image": mcp_image, "replicas": 0},
            ],
        }
        async with http.post(f"{service.url}/mcp-servers/deploy", json=setup) as response:
            assert response.status == 202, await response.text()
        commands = storm(run, mcp_image, [f"ba-{run}", f"bb-{run}"])

        await fire_and_kill(service, commands)
        answered = [c for c in commands if c.status is not None]
        acknowledged = [c for c in commands if c.acknowledged]
        assert KILL_AFTER <= len(answered) < STORM, "the kill came after the storm"
        assert acknowledged, [c.status for c in answered]

        await service.start(http)
        log = await checks.read_log(database_url)
        assert_all_or_nothing(commands, log)
        carried_out = [c for c in commands if c.key in by_key(log)]
        # a repeat gets the first answer and appends nothing, also for the unanswered
        repeated = await resend(http, service.url, carried_out)
        for first, again in zip(carried_out, repeated, strict=True):
            assert again.acknowledged and again.position == by_key(log)[first.key][-1].position
        after = by_key(await checks.read_log(database_url))
        assert all(len(after[c.key]) == len(c.produces) for c in carried_out)

        await checks.docker_matches_desired(
            http, service, docker, owner_labels, base, within=CONVERGE_S
        )
        await checks.assert_chain_verifies(http, service)
        await service.stop()
        await checks.assert_after_stop(service, database_url)
        print(
            f"answered {len(answered)}, acknowledged {len(acknowledged)},"
            f" carried out {len(carried_out)} of {STORM}"
        )
    finally:
        await service.kill()
        await sweep(docker, owner_labels)


async def kill_at_first(
    action: str, service: Service, owner_labels: dict[str, str], group_id: str, since_nano: int
) -> None:
    """`kill -9` the service the moment Docker reports the first `create` (or `start`) of a
    container of the group: the other replicas are then being created (or started), and that
    one is not recorded as such yet."""
    watcher = DockerAdapter()
    try:
        async for event in watcher.events(since_nano):
            mine = all(event.labels.get(k) == v for k, v in owner_labels.items())
            if mine and event.labels.get("dtma.group") == group_id and event.action == action:
                service.kill_now()
                return
    finally:
        await watcher.close()


@pytest.mark.parametrize("kill_at", ["create", "start"])
async def test_a_kill_9_mid_deploy_of_five_servers_leaves_no_duplicate_and_no_orphan(
    kill_at: str,
    tmp_path: Path,
    docker: DockerAdapter,
    mcp_image: str,
    owner_labels: dict[str, str],
    http: aiohttp.ClientSession,
) -> None:
    run = secrets.token_hex(3)
    database_url = f"sqlite:///{tmp_path / 'dtma.db'}"
    service = Service(database_url, tmp_path, owner_labels)
    group = f"five-{run}"
    servers = [f"s{n}-{run}" for n in range(1, 6)]
    killer: asyncio.Task[None] | None = None
    try:
        await service.start(http)
        killer = asyncio.create_task(
            kill_at_first(kill_at, service, owner_labels, group, time.time_ns())
        )
        spec = {
            "groupId": group,
            "mcpServers": [{"id": s, "image": mcp_image, "replicas": 1} for s in servers],
        }
        async with http.post(f"{service.url}/mcp-servers/deploy", json=spec) as response:
            assert response.status == 202, await response.text()
        await asyncio.wait_for(killer, 60)
        await service.wait()

        at_crash = await checks.owned_containers(docker, owner_labels)
        log = await checks.read_log(database_url)
        started = {e.data["container_id"] for e in log if e.type == "ContainerStarted"}
        recorded = {e.data["container_id"] for e in log if e.type == "ContainerCreated"}
        assert at_crash and len(started) < len(servers), "the kill was not mid-deploy"
        print(
            f"at the kill: {len(at_crash)} containers, {sum(c.running for c in at_crash)} running;"
            f" the log: {len(recorded)} created, {len(started)} started;"
            f" {len({c.id for c in at_crash} - recorded)} created but not recorded,"
            f" {len({c.id for c in at_crash if c.running} - started)} running but not recorded"
        )

        await service.start(http)

        running = await checks.docker_matches_desired(
            http, service, docker, owner_labels, [group], within=CONVERGE_S, healthy=True
        )
        assert sorted(c.labels["dtma.server"] for c in running.values()) == servers
        log = await checks.read_log(database_url)
        assert_every_container_accounted_for(log, set(running))
        await checks.assert_chain_verifies(http, service)
        await service.stop()
        await checks.assert_after_stop(service, database_url)
    finally:
        if killer is not None:
            killer.cancel()
            await asyncio.gather(killer, return_exceptions=True)
        await service.kill()
        await sweep(docker, owner_labels)


def assert_every_container_accounted_for(log: list[RecordedEvent], running: set[str]) -> None:
    """Each container the log says was created runs now or was later recorded removed, and
    each running container was recorded created and started."""
    removed: dict[str, int] = {}
    for event in log:
        if event.type == "ContainerRemoved":
            removed[event.data["container_id"]] = event.position
    for event in log:
        if event.type == "ContainerCreated":
            cid = event.data["container_id"]
            assert cid in running or removed.get(cid, 0) > event.position, event
    for kind in ("ContainerCreated", "ContainerStarted"):
        assert running <= {e.data["container_id"] for e in log if e.type == kind}, kind
