"""The health monitor: probes every running replica and runs each server's circuit breaker.

- One probe task per running replica's container, scheduled by the server's `healthCheck`
  (interval, timeout, start period); at most `concurrency` probes are in flight at once, and a
  hung server only ever holds up its own task. A new replica is probed every `STARTING_PROBE_S`
  until it first passes, so it counts as healthy as soon as it is.
- A probe result goes into the log only when it changes the replica's health.
- Failures (probes failing while a replica is unhealthy, containers that died or would not start)
  and successes feed the pure breaker (`service.breaker`); a transition it calls for is recorded
  as `CircuitTransitioned`, and then whoever wants to know is told (the heartbeat).

The breaker's counters live here, in memory; its circuit lives in the log. After a restart the
circuits are read back from the health projection and counting starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import aiohttp

from eventstore import catalogue as eventstore_catalogue
from eventstore import errors, records, times
from eventstore import store as eventstore_store
from projections import containers, events, health, specs
from projections import runner as projections_runner
from service import loops, status
from service.handling import causation as handling_causation
from service.health import breaker, probes
from service.health.replica_health import ReplicaProbes, observe

logger = logging.getLogger(__name__)

STARTING_PROBE_S = 0.25
TICK_S = 0.25
RESUMING = loops.Doubling(first=0.1, ceiling=5.0)  # the breakers' reading of the log


@dataclass(frozen=True, slots=True)
class Target:
    """What to probe for one replica's container, and how."""

    server_id: str
    image: str
    replica: int
    container_id: str
    check: specs.HealthCheck
    url: str | None  # mcp/http
    host: str | None  # tcp
    port: int | None
    bridged: bool = False  # a stdio server's: `url` is its bridge, on DTMA's own API


def targets(models: status.ReadModels) -> dict[str, Target]:
    """Every running replica that has a probe to run, by container id. Pure."""
    found: dict[str, Target] = {}
    for server_id, server in models.desired.servers.items():
        check = server.spec.health_check
        if check.type == "none":
            continue
        for instance in models.observed.of(server_id):
            if instance.state != "running" or not instance.container_id:
                continue
            url = status.endpoint(instance, server.spec.port, check.url or server.spec.path)
            bridged = server.spec.transport == "stdio"
            if bridged:
                url = models.endpoint(server, instance)
            if url is None:
                continue
            host, port = (
                (instance.address, server.spec.port)
                if instance.address
                else (status.LOOPBACK, instance.host_port)
            )
            found[instance.container_id] = Target(
                server_id,
                server.spec.image,
                instance.replica,
                instance.container_id,
                check,
                url,
                host,
                port,
                bridged,
            )
    return found


def breaker_config(models: status.ReadModels, server_id: str) -> health.BreakerConfig:
    """The configured breaker, disabled if the server's own health check says so."""
    config = models.health.breaker_config(server_id)
    server = models.desired.servers.get(server_id)
    if server is not None and not server.spec.health_check.circuit_breaker_enabled:
        return config.model_copy(update={"enabled": False})
    return config


def death_error(event: events.ContainerDied) -> str:
    if event.oom_killed:
        return f"replica {event.replica} was killed for running out of memory"
    return f"replica {event.replica} exited with code {event.exit_code}"


class HealthMonitor:
    def __init__(
        self,
        store: eventstore_store.EventStore,
        runner: projections_runner.ProjectionRunner,
        catalogue: eventstore_catalogue.Catalogue,
        concurrency: int = 64,
        failed: Callable[[str], None] = loops.uncounted,
        api_url: str = status.DEFAULT_API_URL,
        bridge_token: str | None = None,
    ) -> None:
        """`bridge_token` authenticates the probes of stdio servers to DTMA's own API."""
        self._store = store
        self._api_url = api_url
        self._bridge_headers = {"Authorization": f"Bearer {bridge_token}"} if bridge_token else {}
        self._bridge_session: aiohttp.ClientSession | None = None
        self._runner = runner
        self._catalogue = catalogue
        self._limit = asyncio.Semaphore(concurrency)
        self._failed = failed  # counts a failure of one of its loops, by name
        self._tasks: dict[str, asyncio.Task[None]] = {}  # container id -> its probe loop
        self._breakers: dict[str, breaker.Breaker] = {}
        # (server id, image) -> the protocol era it answered in; a new image is asked afresh
        self._eras: dict[tuple[str, str], probes.Era] = {}
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.listeners: list[Callable[[], None]] = []  # told after every recorded transition
        self.probe_observers: list[Callable[[str, bool], None]] = []  # (type, passed)
        self._causation = handling_causation.Causation(store, "health-monitor")

    # -- what the API reads ------------------------------------------------------------------

    def live(self, server_id: str) -> breaker.Breaker:
        """The breaker with its live counters (the circuit as the log has it)."""
        return self._breakers.get(server_id) or self._from_log(server_id)

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            # apart: its token goes to DTMA's own API only, never to a server
            aiohttp.ClientSession(headers=self._bridge_headers) as bridge_session,
        ):
            self._session = session
            self._bridge_session = bridge_session
            parts = [
                self._supervised("probe-targets", self._follow_targets),
                self._supervised("breaker-log", self._follow_log),
                self._supervised("breaker-clock", self._tick),
            ]
            try:
                await asyncio.gather(*parts)
            finally:
                for task in [*parts, *self._tasks.values()]:
                    task.cancel()
                await asyncio.gather(*parts, *self._tasks.values(), return_exceptions=True)
                self._tasks.clear()

    def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Its loops fail alone: a bug in one restarts it, not the probes of the others."""
        supervised = loops.supervise(f"health-monitor.{name}", loop, self._failed)
        return asyncio.create_task(supervised, name=f"dtma-{name}")

    async def _follow_targets(self) -> None:
        """Keep one probe loop per running replica, following the projections."""
        while True:
            wanted = targets(status.ReadModels.of(self._runner, self._api_url))
            for container_id in set(self._tasks) - set(wanted):
                self._tasks.pop(container_id).cancel()
            for container_id, target in wanted.items():
                if container_id not in self._tasks:
                    self._tasks[container_id] = asyncio.create_task(
                        self._probe_loop(target), name=f"dtma-probe-{container_id[:12]}"
                    )
            await self._runner.wait_for(self._runner.position + 1)

    def _resumed(self, target: Target) -> ReplicaProbes:
        """Probe state for a container: the log's verdict, if it has one (after a restart of
        DTMA, say), so that confirming it appends nothing; else a replica just starting."""
        now = time.time()
        verdict = self._runner.state(health.PROJECTION).replica_health(
            target.server_id, target.replica, target.container_id
        )
        if verdict == "healthy":
            return ReplicaProbes(started_at=now, health="healthy", healthy_since=now)
        if verdict == "unhealthy":
            return ReplicaProbes(started_at=now, health="unhealthy")
        return ReplicaProbes(started_at=now)

    async def _probe_loop(self, target: Target) -> None:
        check = target.check
        state = self._resumed(target)
        cause = self._verdict_cause(target)  # what its next verdict and signals follow from
        while True:
            began = asyncio.get_running_loop().time()
            async with self._limit:
                result = await self._probe(target)
            for observe_probe in self.probe_observers:
                observe_probe(check.type, result.ok)
            at = time.time()
            state, changed = observe(state, result.ok, at, check)
            if changed is not None and changed != "starting":
                cause = await self._record_health(target, changed, result, cause) or cause
            if result.ok:
                healthy_for = at - state.healthy_since if state.healthy_since else 0.0
                await self.signal(target.server_id, breaker.Success(at, healthy_for), cause)
            elif state.health == "unhealthy":
                failure = breaker.Failure(at, self._error(target, result))
                await self.signal(target.server_id, failure, cause)
            interval = check.interval_ms / 1000
            if state.health == "starting":
                interval = min(interval, STARTING_PROBE_S)
            elapsed = asyncio.get_running_loop().time() - began
            await asyncio.sleep(max(interval - elapsed, 0.0))

    async def _probe(self, target: Target) -> probes.ProbeResult:
        timeout = target.check.timeout_ms / 1000
        session = self._bridge_session if target.bridged else self._session
        assert session is not None, "probes run only inside run()"
        match target.check.type:
            case "mcp":
                assert target.url is not None
                key = (target.server_id, target.image)
                result = await probes.probe_mcp(session, target.url, timeout, self._eras.get(key))
                if result.era is not None:
                    self._eras[key] = result.era
                elif not result.ok:
                    self._eras.pop(key, None)  # ask afresh next time
                return result
            case "http":
                assert target.url is not None
                return await probes.probe_http(session, target.url, timeout)
            case _:
                assert target.host is not None and target.port is not None
                return await probes.probe_tcp(target.host, target.port, timeout)

    @staticmethod
    def _error(target: Target, result: probes.ProbeResult) -> str:
        return f"replica {target.replica}: {target.check.type} probe failed: {result.detail}"

    def _verdict_cause(self, target: Target) -> int:
        """The replica's last verdict on this container, else its start, else the head."""
        verdict = self._runner.state(health.PROJECTION).replicas.get(target.server_id, {})
        last = verdict.get(target.replica)
        if last is not None and last.container_id == target.container_id:
            return last.position
        observed = self._runner.state(containers.PROJECTION).instances.get(target.server_id, {})
        instance = observed.get(target.replica)
        if instance is not None and instance.container_id == target.container_id:
            return instance.started_position or self._runner.position
        return self._runner.position

    async def _record_health(
        self, target: Target, health_now: str, result: probes.ProbeResult, cause: int
    ) -> int | None:
        """The new verdict's position (None if it could not be recorded)."""
        event = events.ReplicaHealthChanged(
            server_id=target.server_id,
            replica=target.replica,
            container_id=target.container_id,
            health="healthy" if health_now == "healthy" else "unhealthy",
            reason=result.detail,
            timed_out=result.timed_out,
        )
        with contextlib.suppress(errors.StoreError):  # the next change records the truth again
            return await self._append(target.server_id, event, actor="probe", causation=cause)
        return None

    # -- the breaker -------------------------------------------------------------------------

    async def signal(
        self, server_id: str, signal: breaker.Signal, cause: int | None = None
    ) -> None:
        """Feed one signal to a server's breaker; record the transition it calls for."""
        async with self._lock:
            models = status.ReadModels.of(self._runner)
            if server_id not in models.desired.servers:
                self._breakers.pop(server_id, None)
                return
            config = breaker_config(models, server_id)
            current = self._breakers.get(server_id) or self._from_log(server_id)
            after, proposed = breaker.transition(current, signal, config)
            if proposed is not None:
                try:
                    await self._record_transition(server_id, current, after, proposed, cause)
                except errors.StoreError as exc:
                    logger.warning("could not record a circuit transition: %s", exc)
                else:
                    after = breaker.enter(after, proposed.to, time.time(), config)
            self._breakers[server_id] = after
        if proposed is not None:
            for listener in self.listeners:
                listener()

    async def _record_transition(
        self,
        server_id: str,
        before: breaker.Breaker,
        after: breaker.Breaker,
        proposed: breaker.Transition,
        cause: int | None,
    ) -> None:
        config = breaker_config(status.ReadModels.of(self._runner), server_id)
        event = events.CircuitTransitioned(
            server_id=server_id,
            from_state=before.circuit,
            to_state=proposed.to,
            cause=proposed.cause,
            failures=after.consecutive_failures,
            open_timeout_ms=config.open_timeout_ms if proposed.to == "open" else None,
        )
        position = await self._append(server_id, event, actor="system", causation=cause)
        await self._runner.wait_for(position)
        logger.info(
            "circuit of %s: %s -> %s (%s)", server_id, before.circuit, proposed.to, proposed.cause
        )

    def _from_log(self, server_id: str) -> breaker.Breaker:
        view = self._runner.state(health.PROJECTION).circuit(server_id)
        due = times.parse_time(view.next_attempt_at).timestamp() if view.next_attempt_at else None
        return breaker.Breaker(circuit=view.state, next_attempt_at=due)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            circuits = self._runner.state(health.PROJECTION).circuits
            for server_id, view in circuits.items():
                if view.state != "closed":
                    since = view.transitions[-1].position if view.transitions else None
                    await self.signal(server_id, breaker.Tick(time.time()), since)

    async def _follow_log(self) -> None:
        """Deaths and failed starts are failures; a group restart is a recovery attempt."""
        position = self._runner.position
        retry = loops.Retry(RESUMING)
        while True:
            try:
                async for recorded in self._store.subscribe(position):
                    position = recorded.position
                    await self._on_event(recorded)
                    retry.reset()
            except errors.StoreError as exc:
                logger.warning("breakers paused at %d: %s", position, exc)
                await asyncio.sleep(retry.next())

    async def _on_event(self, recorded: records.RecordedEvent) -> None:
        if recorded.type not in (
            "ContainerDied",
            "ContainerFailedToStart",
            "GroupRestartRequested",
        ):
            return
        try:
            event = cast(events.Event, self._catalogue.decode(recorded))
        except Exception:  # noqa: BLE001 - the projections stop on it and say so; pass over
            return
        now = time.time()
        match event:
            case events.ContainerDied():
                failure = breaker.Failure(now, death_error(event))
                await self.signal(event.server_id, failure, cause=recorded.position)
            case events.ContainerFailedToStart():
                failure = breaker.Failure(now, f"replica {event.replica}: {event.reason}")
                await self.signal(event.server_id, failure, cause=recorded.position)
            case events.GroupRestartRequested():
                for server_id in event.order:
                    requested = breaker.RecoveryRequested(now)
                    await self.signal(server_id, requested, cause=recorded.position)

    async def _append(
        self,
        server_id: str,
        event: events.Event,
        actor: handling_causation.Actor,
        causation: int | None = None,
    ) -> int:
        """`causation`: the position of what caused it; without one, the head it acted on."""
        await self._runner.current()  # no verdict or transition recorded on stale state
        cause = causation if causation is not None else self._runner.position
        metadata = await self._causation.caused_by(cause, actor)
        appended = await self._store.append(
            containers.stream_of(server_id),
            [self._catalogue.to_new_event(event)],
            None,
            metadata=metadata,
        )
        return appended.last_position
