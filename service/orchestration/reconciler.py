"""The reconciler: compares desired state (the groups projection) with the containers Docker
has (by `dtma.*` labels) and closes the gap, recording each action as an event.

Level-triggered: it runs at start, after a new event it may act on, after a Docker event and
every `interval` seconds, and always looks at the whole picture, so a restart after a crash
needs no memory beyond the log and Docker. What it removes is recorded before it acts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from eventstore import catalogue as eventstore_catalogue
from eventstore import errors as store_errors
from eventstore import keyring
from eventstore import store as eventstore_store
from projections import containers, dependencies, events, groups, health
from projections import runner as projections_runner
from service import container_policy, errors, loops, status
from service import instance as instances
from service.docker import adapter
from service.orchestration import adoption, rollouts
from service.orchestration.action_log import ActionLog
from service.orchestration.images import ReplicaImages
from service.orchestration.own_networks import OwnNetworks
from service.orchestration.replicas import (
    CREDENTIALS_LABEL,
    Replica,
    as_replica,
    is_healthy,
    network_name,
    recovery_reason,
    removal_reason,
    removed_key,
    removed_outside,
    wanted_env,
)
from service.orchestration.starter import ReplicaStarter
from service.registries import pulls

logger = logging.getLogger(__name__)

MAX_PARALLEL_STARTS = 8
SETTLED_S = 60.0
# Events no pass acts on (it records most of them itself): one arriving wakes nothing, so a
# stream of breaker settings, applied configs or credentials costs no Docker listing each.
PASSIVE_EVENTS = frozenset(
    {
        "CircuitBreakerConfigured",
        "NetworkCreated",
        "NetworkRemoved",
        "ContainerCreated",
        "InitContainerCompleted",
        "CredentialsApplied",
        "CredentialsFailed",
        "OAuthRefreshFailed",
        "ConfigTemplateDefined",
        "ServerConfigured",
        "ConfigApplied",
        "ConfigApplyFailed",
        "ImagePullStarted",
        "ImagePulled",
        "ImagePullFailed",
        "RegistryCredentialsStored",
        "RegistryCredentialsForgotten",
    }
)


class Reconciler:
    def __init__(
        self,
        store: eventstore_store.EventStore,
        runner: projections_runner.ProjectionRunner,
        docker: adapter.DockerAdapter,
        catalogue: eventstore_catalogue.Catalogue,
        owner_labels: Mapping[str, str] | None = None,
        interval: float = 10.0,
        ring: keyring.KeyRing | None = None,
        instance_id: str = "",
        policy: container_policy.ContainerPolicy = container_policy.DEFAULT_POLICY,
        puller: pulls.ImagePuller | None = None,
        reach: str = "host",
    ) -> None:
        self._owner_labels = dict(owner_labels or {})
        self._instance_id = instance_id
        # what it stamps on what it creates: the owner labels and, with an id, its instance
        stamped = {**self._owner_labels, instances.LABEL: instance_id} if instance_id else {}
        self._stamped = stamped or self._owner_labels
        # managed containers of another instance on this engine, as the last pass found them
        self.foreign: list[adapter.ContainerInfo] = []
        self._store = store
        self._runner = runner
        self._docker = docker
        self._interval = interval
        self._wake = asyncio.Event()
        self._backoff = loops.Backoff()
        self._attempted: dict[str, int] = {}  # server -> the half-open position it acted on
        self._rolling: set[str] = set()  # servers replacing a replica for new env credentials
        self.removing: set[str] = set()  # container ids being removed on purpose
        self._seen = 0  # the position of the models the last pass read
        self._log = ActionLog(store, catalogue)
        self.puller = puller or pulls.ImagePuller(runner, docker, ring)
        images = ReplicaImages(runner, docker, self.puller, self._log)
        self._starter = ReplicaStarter(
            runner,
            docker,
            self._log,
            self._backoff,
            self.removing,
            self._stamped,
            ring,
            images,
            policy,
        )
        self._own_networks = OwnNetworks(docker, reach)

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reconcile_once()
            except (errors.ServiceError, store_errors.StoreError) as exc:
                logger.warning("reconcile failed, retrying: %s", exc.args[0] if exc.args else exc)
                self._seen = self._runner.position  # retry on news or the interval, not at once
            await self._wait()

    async def _wait(self) -> None:
        """Until something changed since the last pass read the models: an event it may act
        on, a poke, or the interval (sooner when a backoff ends)."""
        within = min(self._interval, self._backoff.next_in(self._now(), self._interval))
        deadline = self._now() + within
        while not self._wake.is_set() and not self._changed_since(self._seen):
            remaining = deadline - self._now()
            if remaining <= 0:
                return
            waits = {
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(
                    self._runner.wait_for(self._runner.position + 1, within=remaining)
                ),
            }
            _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _changed_since(self, position: int) -> bool:
        """An event a pass may act on was folded after `position`."""
        return any(
            at > position
            for kind, at in self._runner.last_of_type.items()
            if kind not in PASSIVE_EVENTS
        )

    async def reconcile_once(self) -> None:
        head = await self._runner.current()  # stopped or behind: no pass on stale state
        self._log.acted_on = head
        models = status.ReadModels.of(self._runner)
        self._seen = self._runner.position
        self._starter.reach = await self._own_networks.reach()
        desired = models.desired
        managed = await self._docker.list_managed(self._owner_labels)
        recorded = models.observed.container_ids()
        self.foreign = [c for c in managed if not self._ours(c.labels, c.id in recorded)]
        actual = [
            r
            for r in map(as_replica, managed)
            if r and self._ours(r.info.labels, r.info.id in recorded)
        ]
        recovering = self._recovery_attempts(models.health)
        self._rolling = set()
        # the recovery attempt does not wait out a backoff
        self._backoff.forgive_servers(recovering)
        await self._record_vanished(actual)
        kept = await self._remove_unwanted(models, actual, recovering)
        await self._adopt_unrecorded(models, kept)
        await self._ensure_networks(desired)
        await self._start_missing(models, kept, recovering)
        await self._start_successors(models, kept, recovering)
        await self._remove_unused_networks(desired)
        for server_id in recovering:
            self._attempted[server_id] = models.health.circuit(server_id).half_open_position or 0

    def _ours(self, labels: Mapping[str, str], recorded: bool) -> bool:
        """Made by this instance: its owner labels, and its instance label or (made before
        instances had ids) a record in this instance's log. Nothing else is touched."""
        if not all(labels.get(k) == v for k, v in self._owner_labels.items()):
            return False
        return not self._instance_id or instances.belongs(labels, self._instance_id, recorded)

    # -- the circuit breaker ------------------------------------------------------------------

    def _recovery_attempts(self, state: health.HealthState) -> set[str]:
        """Servers whose circuit just went half-open and have not made their one attempt."""
        return {
            server_id
            for server_id, view in state.circuits.items()
            if view.state == "half_open"
            and self._attempted.get(server_id) != view.half_open_position
        }

    def _may_start(self, models: status.ReadModels, server_id: str, recovering: set[str]) -> bool:
        """Not while a required credential is missing. Then by the circuit: closed, yes; open,
        no automatic restarts; half-open, only the one recovery attempt."""
        if models.missing_credentials(server_id):
            return False
        circuit = models.health.circuit(server_id).state
        return circuit == "closed" or server_id in recovering

    async def _adopt_unrecorded(self, models: status.ReadModels, kept: list[Replica]) -> None:
        """Record a kept container the log never saw started (a crash between Docker's start
        and the append): unrecorded, it would run but never be probed, reported or depended on."""
        for replica in kept:
            instance = models.observed.instances.get(replica.server_id, {}).get(replica.replica)
            label = replica.info.labels.get(CREDENTIALS_LABEL)
            wanted = wanted_env(models, replica.server_id)
            by_network = self._starter.reach.network
            for event in adoption.unrecorded(replica, instance, label, wanted, by_network):
                await self._log.record(replica.server_id, event)

    # -- removing ----------------------------------------------------------------------------

    async def _remove_unwanted(
        self, models: status.ReadModels, actual: list[Replica], recovering: set[str]
    ) -> list[Replica]:
        kept = []
        for replica in sorted(actual, key=lambda r: -r.replica):  # highest replica first
            self._forgive_if_settled(models, replica)
            reason = removal_reason(replica, models.desired)
            if reason is None and replica.server_id in recovering:
                reason = recovery_reason(models, replica)
            elif reason is None and not replica.info.running:
                may = self._may_start(models, replica.server_id, recovering)
                key = (replica.server_id, replica.replica)
                reason = "exited" if may and self._backoff.try_now(key, self._now()) else None
            if reason is None:
                reason = rollouts.rolling_reason(models, replica, actual, self._rolling)
            if reason is None:
                kept.append(replica)
                continue
            server = models.desired.servers.get(replica.server_id)
            await self._remove(replica, reason, server.changed_at if server else None)
        return kept

    async def _start_successors(
        self, models: status.ReadModels, kept: list[Replica], recovering: set[str]
    ) -> None:
        """For one replica per server whose environment lacks the current env credentials,
        start its successor beside it (the old one goes once the successor is healthy)."""
        for server_id, server in models.desired.servers.items():
            if server.spec.host_ports or not self._may_start(models, server_id, recovering):
                continue
            replica = rollouts.stale_replica(models, server_id, kept)
            if replica is not None and self._backoff.due((server_id, replica), self._now()):
                group = models.desired.groups[server.group_id]
                await self._starter.start(models.desired, group, server, replica, successor=True)

    async def _remove(self, replica: Replica, reason: str, cause: int | None) -> None:
        await self._log.record(
            replica.server_id,
            events.ContainerRemoved(
                server_id=replica.server_id,
                replica=replica.replica,
                container_id=replica.info.id,
                reason=reason,
            ),
            cause,
        )
        self.removing.add(replica.info.id)
        await self._docker.remove_container(replica.info.id)

    async def _record_vanished(self, actual: list[Replica]) -> None:
        """Replicas the log has but Docker does not: removed while nobody was watching."""
        present = {r.info.id for r in actual}
        for server_id, replicas in self._runner.state(containers.PROJECTION).instances.items():
            for instance in replicas.values():
                cid = instance.container_id
                if cid and instance.state != "failed" and cid not in present:
                    await self._log.append(
                        containers.stream_of(server_id),
                        removed_outside(server_id, instance.replica, cid),
                        idempotency_key=removed_key(cid),
                    )

    # -- networks ----------------------------------------------------------------------------

    async def _ensure_networks(self, desired: groups.GroupsState) -> None:
        known = self._runner.state(containers.PROJECTION).networks
        for group in desired.groups.values():
            name = network_name(group.id)
            labels = {**self._stamped, "dtma.group": group.id}
            await self._docker.ensure_network(name, labels, group.internal)
            if known.get(group.id) != name:
                await self._log.record_group(
                    group.id,
                    events.NetworkCreated(group_id=group.id, network=name, internal=group.internal),
                )
        await self._own_networks.attach(network_name(g) for g in desired.groups)

    async def _remove_unused_networks(self, desired: groups.GroupsState) -> None:
        recorded = set(self._runner.state(containers.PROJECTION).networks.values())
        for name, labels in await self._docker.list_managed_networks():
            ours = self._ours(labels, name in recorded)
            group_id = labels.get("dtma.group") if ours else None
            if group_id and group_id not in desired.groups:
                await self._own_networks.detach(name)
                await self._docker.remove_network(name)
                await self._log.record_group(
                    group_id, events.NetworkRemoved(group_id=group_id, network=name)
                )

    # -- starting ----------------------------------------------------------------------------

    async def _start_missing(
        self, models: status.ReadModels, kept: list[Replica], recovering: set[str]
    ) -> None:
        """Start missing replicas in waves: every server whose dependencies are healthy starts
        at once (at most `MAX_PARALLEL_STARTS` containers at a time), then those that waited.
        A server whose circuit is open starts nothing."""
        desired = models.desired
        present = {(r.server_id, r.replica) for r in kept}
        healthy = {r.server_id for r in kept if is_healthy(models, r)}
        limit = asyncio.Semaphore(MAX_PARALLEL_STARTS)
        for group in desired.groups.values():
            graph = {s: desired.servers[s].spec.depends_on for s in group.servers}
            waiting = [
                s for s in dependencies.start_order(graph) if self._may_start(models, s, recovering)
            ]
            while wave := [s for s in waiting if all(d in healthy for d in graph[s])]:
                waiting = [s for s in waiting if s not in wave]
                await asyncio.gather(
                    *(self._start_server(desired, group, s, present, limit) for s in wave)
                )

    async def _start_server(
        self,
        desired: groups.GroupsState,
        group: groups.GroupState,
        server_id: str,
        present: set[tuple[str, int]],
        limit: asyncio.Semaphore,
    ) -> None:
        """Start the server's missing replicas (after its init containers)."""
        server = desired.servers[server_id]
        if not await self._starter.initialised(desired, group, server):
            return
        replicas = [
            r
            for r in range(1, server.replicas + 1)
            if (server_id, r) not in present and self._backoff.due((server_id, r), self._now())
        ]
        image = await self._starter.image(server, replicas) if replicas else None
        if image is None:
            return

        async def start(replica: int) -> bool:
            async with limit:
                return await self._starter.start(desired, group, server, replica, image=image)

        await asyncio.gather(*(start(r) for r in replicas))

    # -- retries -----------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _forgive_if_settled(self, models: status.ReadModels, replica: Replica) -> None:
        """A replica that has been healthy for a minute starts its backoff afresh."""
        started = replica.info.started_at
        settled = started is not None and (datetime.now(UTC) - started).total_seconds() >= SETTLED_S
        if settled and is_healthy(models, replica):
            self._backoff.forgive([(replica.server_id, replica.replica)])
