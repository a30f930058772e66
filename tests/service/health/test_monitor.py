"""The health monitor on a real SQLite log, probing a real HTTP server: a replica's verdict is
recorded only when it changes, and its failures, or deaths in the log, open the circuit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from eventstore.records import RecordedEvent
from eventstore.store import EventStore
from projections import ALL, containers, events, groups, specs
from projections.runner import ProjectionRunner
from service.health import monitor as health_monitor
from service.status import ReadModels
from tests.support.databases import open_migrated_store
from tests.support.waiting import wait_until

FAST_HTTP = specs.HealthCheck(
    type="http", url="/ready", interval_ms=50, timeout_ms=1_000, failure_threshold=2
)
NO_PROBE = specs.HealthCheck(type="none")


@dataclass
class StandIn:
    """An MCP server's readiness route, as others would write it: it answers `status`."""

    status: int = 200
    served: list[int] = field(default_factory=list)

    async def ready(self, _request: web.Request) -> web.Response:
        self.served.append(self.status)
        return web.Response(status=self.status)


@dataclass
class Log:
    store: EventStore
    runner: ProjectionRunner

    async def append(self, stream: str, *facts: events.Event) -> int:
        position = 0
        for fact in facts:
            appended = await self.store.append(
                stream, [events.CATALOGUE.to_new_event(fact)], expected_version=None
            )
            position = appended.last_position
        return position

    async def of_type(self, kind: str) -> list[RecordedEvent]:
        return [e for e in await self.store.read_all(0, 10_000) if e.type == kind]

    async def declare(self, check: specs.HealthCheck, host_port: int | None = None) -> int:
        spec = specs.ServerSpec(id="s", image="example/s:1", health_check=check)
        await self.append(
            groups.stream_of("g"),
            events.GroupDeclared(group_id="g", name="g"),
            events.ServerDeclared(group_id="g", spec=spec),
        )
        position = await self.append(
            containers.stream_of("s"),
            events.ContainerCreated(
                group_id="g", server_id="s", replica=1, container_id="c1", name="c1", generation=1
            ),
            events.ContainerStarted(
                server_id="s", replica=1, container_id="c1", host_port=host_port
            ),
        )
        assert await self.runner.wait_for(position, within=10)
        return position


@pytest.fixture
async def log(sqlite_url: str) -> AsyncIterator[Log]:
    store = await open_migrated_store(sqlite_url)
    runner = ProjectionRunner(store, events.CATALOGUE, ALL)
    try:
        await runner.start()
        yield Log(store, runner)
    finally:
        await runner.stop()
        await store.close()


@pytest.fixture
async def stand_in(aiohttp_server: Callable[..., Any]) -> tuple[StandIn, int]:
    server = StandIn()
    app = web.Application()
    app.router.add_get("/ready", server.ready)
    running: TestServer = await aiohttp_server(app)
    assert running.port is not None
    return server, running.port


@asynccontextmanager
async def monitoring(log: Log) -> AsyncIterator[health_monitor.HealthMonitor]:
    monitor = health_monitor.HealthMonitor(log.store, log.runner, events.CATALOGUE)
    task = asyncio.create_task(monitor.run())
    try:
        yield monitor
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_records_a_healthy_replica_once_however_often_its_probe_passes(
    log: Log, stand_in: tuple[StandIn, int]
) -> None:
    server, port = stand_in
    await log.declare(FAST_HTTP, host_port=port)

    async with monitoring(log):
        await wait_until(lambda: log.of_type("ReplicaHealthChanged"), within=10)
        probed = len(server.served)
        await wait_until(_at_least(server.served, probed + 10), within=10)

    verdicts = [e.data for e in await log.of_type("ReplicaHealthChanged")]
    assert [(v["container_id"], v["health"]) for v in verdicts] == [("c1", "healthy")]


async def test_an_unhealthy_replica_is_recorded_and_its_failures_open_the_circuit(
    log: Log, stand_in: tuple[StandIn, int]
) -> None:
    server, port = stand_in
    await log.declare(FAST_HTTP, host_port=port)
    told: list[None] = []

    async with monitoring(log) as monitor:
        monitor.listeners.append(lambda: told.append(None))
        await wait_until(lambda: log.of_type("ReplicaHealthChanged"), within=10)
        server.status = 503
        [opened] = await wait_until(lambda: log.of_type("CircuitTransitioned"), within=10)
        live = monitor.live("s")

    verdicts = [e.data["health"] for e in await log.of_type("ReplicaHealthChanged")]
    assert verdicts == ["healthy", "unhealthy"]
    assert (opened.data["from_state"], opened.data["to_state"]) == ("closed", "open")
    assert opened.data["failures"] == 3  # the default breaker's threshold
    assert opened.metadata["actor"] == "system"
    assert live.circuit == "open"
    assert told


async def test_deaths_in_the_log_open_the_circuit_of_a_server_nothing_probes(log: Log) -> None:
    await log.declare(NO_PROBE)
    deaths: list[int] = []

    async def die_until_opened() -> list[RecordedEvent]:
        died = events.ContainerDied(
            server_id="s", replica=1, container_id="c1", exit_code=len(deaths) + 1
        )
        deaths.append(await log.append(containers.stream_of("s"), died))
        return await log.of_type("CircuitTransitioned")

    async with monitoring(log):
        [opened] = await wait_until(die_until_opened, within=10)

    assert opened.data["to_state"] == "open"
    assert len(deaths) >= 3  # the default breaker's threshold
    assert int(opened.metadata["causation_id"]) in deaths  # caused by a death
    assert await log.of_type("ReplicaHealthChanged") == []


async def test_probes_only_running_replicas_of_servers_with_a_health_check(log: Log) -> None:
    await log.declare(FAST_HTTP, host_port=41000)
    models = ReadModels.of(log.runner)

    [target] = health_monitor.targets(models).values()

    assert (target.container_id, target.url) == ("c1", "http://127.0.0.1:41000/ready")
    stopped = await log.append(
        containers.stream_of("s"),
        events.ContainerDied(server_id="s", replica=1, container_id="c1", exit_code=0),
    )
    assert await log.runner.wait_for(stopped, within=10)
    assert health_monitor.targets(ReadModels.of(log.runner)) == {}


def _at_least(served: list[int], count: int) -> Callable[[], Any]:
    async def enough() -> bool:
        return len(served) >= count

    return enough
