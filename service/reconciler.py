"""The reconciler: compares desired state (the groups projection) with the containers Docker
has (by `dtma.*` labels) and closes the gap, recording each action as an event.

Level-triggered: it runs at start, after every new event, after a Docker event and every
`interval` seconds, and always looks at the whole picture, so a restart after a crash needs no
memory beyond the log and Docker. What it removes is recorded before it acts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from eventstore.catalogue import Catalogue
from eventstore.errors import StoreError
from eventstore.keyring import KeyRing, KeyringError
from eventstore.store import EventStore
from projections import config, containers, credentials, dependencies, events, groups, health
from projections.runner import ProjectionRunner
from service import adoption, config_applier, errors
from service.backoff import Backoff
from service.causation import Causation
from service.docker import ContainerInfo, ContainerSpec, DockerAdapter
from service.status import ReadModels

logger = logging.getLogger(__name__)

CREDENTIALS_LABEL = "dtma.credentials-version"  # which version's env secrets it was given
# File credentials land on a tmpfs at /run/secrets (the adapter leaves it out for images
# without /bin/sh, which only the archive API can write into).
SECRETS_TMPFS = True
MAX_PARALLEL_STARTS = 8
SETTLED_S = 60.0


def container_name(group_id: str, server_id: str, replica: int) -> str:
    return f"dtma-{group_id}-{server_id}-{replica}"


def network_name(group_id: str) -> str:
    return f"dtma-{group_id}"


def server_stream(server_id: str) -> str:
    return f"server-{server_id}"


@dataclass(frozen=True, slots=True)
class Replica:
    """A container as the reconciler reads its labels."""

    info: ContainerInfo
    group_id: str
    server_id: str
    replica: int
    generation: int


def as_replica(info: ContainerInfo) -> Replica | None:
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
    """Why this container must go, or None if it is wanted as it is. Pure."""
    server = desired.servers.get(replica.server_id)
    if server is None or server.group_id != replica.group_id:
        return "server removed" if replica.server_id else "unknown server"
    if replica.replica > server.replicas:
        return "scaled down"
    if replica.generation < server.generation:
        return "replaced by a newer spec or a restart"
    return None


class Reconciler:
    def __init__(
        self,
        store: EventStore,
        runner: ProjectionRunner,
        docker: DockerAdapter,
        catalogue: Catalogue,
        owner_labels: Mapping[str, str] | None = None,
        interval: float = 10.0,
        ring: KeyRing | None = None,
    ) -> None:
        self._ring = ring
        self._owner_labels = dict(owner_labels or {})
        self._store = store
        self._runner = runner
        self._docker = docker
        self._catalogue = catalogue
        self._interval = interval
        self._wake = asyncio.Event()
        self._backoff = Backoff()
        self._attempted: dict[str, int] = {}  # server -> the half-open position it acted on
        self._rolling: set[str] = set()  # servers replacing a replica for new env credentials
        self.removing: set[str] = set()  # container ids being removed on purpose
        self._causation = Causation(store, "reconciler")
        self._acted_on = 0  # the log's head this pass read: the cause where no event is

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reconcile_once()
            except (errors.ServiceError, StoreError) as exc:
                logger.warning("reconcile failed, retrying: %s", exc.args[0] if exc.args else exc)
            except Exception:  # noqa: BLE001 - the supervisor must outlive its own bugs
                logger.exception("reconcile failed unexpectedly; retrying")
            await self._wait()

    async def _wait(self) -> None:
        """Until something changed: a new event in the log, a poke, or the interval."""
        position = self._runner.position
        within = min(self._interval, self._backoff.next_in(self._now(), self._interval))
        waits = {
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._runner.wait_for(position + 1, within=within)),
        }
        _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def reconcile_once(self) -> None:
        head, _ = await self._store.head()
        self._acted_on = head
        await self._runner.wait_for(head, within=5.0)
        models = ReadModels.of(self._runner)
        desired = models.desired
        actual = [
            r
            for r in map(as_replica, await self._docker.list_managed(self._owner_labels))
            if r and self._owns(r.info.labels)
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

    def _owns(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self._owner_labels.items())

    # -- the circuit breaker ------------------------------------------------------------------

    def _recovery_attempts(self, state: health.HealthState) -> set[str]:
        """Servers whose circuit just went half-open and have not made their one attempt."""
        return {
            server_id
            for server_id, view in state.circuits.items()
            if view.state == "half_open"
            and self._attempted.get(server_id) != view.half_open_position
        }

    def _may_start(self, models: ReadModels, server_id: str, recovering: set[str]) -> bool:
        """Not while a required credential is missing. Then by the circuit: closed, yes; open,
        no automatic restarts; half-open, only the one recovery attempt."""
        if models.missing_credentials(server_id):
            return False
        circuit = models.health.circuit(server_id).state
        return circuit == "closed" or server_id in recovering

    async def _adopt_unrecorded(self, models: ReadModels, kept: list[Replica]) -> None:
        """Record a kept container the log never saw started (a crash between Docker's start
        and the append): unrecorded, it would run but never be probed, reported or depended on."""
        for replica in kept:
            instance = models.observed.instances.get(replica.server_id, {}).get(replica.replica)
            label = replica.info.labels.get(CREDENTIALS_LABEL)
            wanted = self._wanted_env(models, replica.server_id)
            for event in adoption.unrecorded(replica, instance, label, wanted):
                await self._record(replica.server_id, event)

    # -- removing ----------------------------------------------------------------------------

    async def _remove_unwanted(
        self, models: ReadModels, actual: list[Replica], recovering: set[str]
    ) -> list[Replica]:
        kept = []
        for replica in sorted(actual, key=lambda r: -r.replica):  # highest replica first
            self._forgive_if_settled(models, replica)
            reason = removal_reason(replica, models.desired)
            if reason is None and replica.server_id in recovering:
                reason = self._recovery_reason(models, replica)
            elif reason is None and not replica.info.running:
                may = self._may_start(models, replica.server_id, recovering)
                key = (replica.server_id, replica.replica)
                reason = "exited" if may and self._backoff.try_now(key, self._now()) else None
            if reason is None:
                reason = self._rolling_reason(models, replica, actual)
            if reason is None:
                kept.append(replica)
                continue
            server = models.desired.servers.get(replica.server_id)
            await self._remove(replica, reason, server.changed_at if server else None)
        return kept

    @staticmethod
    def _wanted_env(models: ReadModels, server_id: str) -> str | None:
        """The credentials version a replica's environment should carry (None: no env ones)."""
        active = models.credentials.of(server_id).active()
        return str(active.version) if active is not None and active.env_secrets() else None

    def _rolling_reason(
        self, models: ReadModels, replica: Replica, actual: list[Replica]
    ) -> str | None:
        """Env credentials changed (or were revoked): a replica's container goes once its
        successor, the same replica with the wanted environment started beside it, is healthy.
        A server with fixed host ports cannot run both: there a replica goes first, one at a
        time and only while every other replica is healthy."""
        wanted = self._wanted_env(models, replica.server_id)
        server = models.desired.servers.get(replica.server_id)
        if replica.info.labels.get(CREDENTIALS_LABEL) == wanted or server is None:
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
                    and r.info.labels.get(CREDENTIALS_LABEL) == wanted
                ),
                None,
            )
            if successor is None or not self._healthy(models, successor):
                return None
            return f"replaced by a healthy successor {why}"
        siblings = [r for r in actual if r.server_id == replica.server_id and r is not replica]
        if replica.server_id in self._rolling or not all(
            self._healthy(models, r) for r in siblings
        ):
            return None
        if len(siblings) + 1 < server.replicas:
            return None  # one is already missing: wait for it first
        self._rolling.add(replica.server_id)
        return f"replaced {why} (one at a time)"

    async def _start_successors(
        self, models: ReadModels, kept: list[Replica], recovering: set[str]
    ) -> None:
        """For one replica per server whose environment lacks the current env credentials,
        start its successor beside it (the old one goes once the successor is healthy)."""
        for server_id, server in models.desired.servers.items():
            if server.spec.host_ports or not self._may_start(models, server_id, recovering):
                continue
            mine = [r for r in kept if r.server_id == server_id]
            replicas = [r.replica for r in mine]
            if len(set(replicas)) != len(replicas):
                continue  # a successor is already on its way: one at a time
            wanted = self._wanted_env(models, server_id)
            stale = sorted(
                (
                    r
                    for r in mine
                    if r.info.running and r.info.labels.get(CREDENTIALS_LABEL) != wanted
                ),
                key=lambda r: r.replica,
            )
            if stale and self._backoff.due((server_id, stale[0].replica), self._now()):
                group = models.desired.groups[server.group_id]
                await self._start(models.desired, group, server, stale[0].replica, successor=True)

    @staticmethod
    def _recovery_reason(models: ReadModels, replica: Replica) -> str | None:
        """In a recovery attempt, replicas that exited or fail their probes are replaced."""
        if not replica.info.running:
            return "exited; replaced in a recovery attempt"
        verdict = models.health.replica_health(replica.server_id, replica.replica, replica.info.id)
        if verdict == "unhealthy":
            return "unhealthy; replaced in a recovery attempt"
        return None

    async def _remove(self, replica: Replica, reason: str, cause: int | None) -> None:
        await self._record(
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
                    await self._append(
                        server_stream(server_id),
                        removed_outside(server_id, instance.replica, cid),
                        idempotency_key=removed_key(cid),
                    )

    # -- networks ----------------------------------------------------------------------------

    async def _ensure_networks(self, desired: groups.GroupsState) -> None:
        known = self._runner.state(containers.PROJECTION).networks
        for group in desired.groups.values():
            name = network_name(group.id)
            labels = {**self._owner_labels, "dtma.group": group.id}
            await self._docker.ensure_network(name, labels, group.internal)
            if known.get(group.id) != name:
                await self._record_group(
                    group.id,
                    events.NetworkCreated(group_id=group.id, network=name, internal=group.internal),
                )

    async def _remove_unused_networks(self, desired: groups.GroupsState) -> None:
        for name, labels in await self._docker.list_managed_networks():
            group_id = labels.get("dtma.group") if self._owns(labels) else None
            if group_id and group_id not in desired.groups:
                await self._docker.remove_network(name)
                await self._record_group(
                    group_id, events.NetworkRemoved(group_id=group_id, network=name)
                )

    # -- starting ----------------------------------------------------------------------------

    async def _start_missing(
        self, models: ReadModels, kept: list[Replica], recovering: set[str]
    ) -> None:
        """Start missing replicas in waves: every server whose dependencies are healthy starts
        at once (at most `MAX_PARALLEL_STARTS` containers at a time), then those that waited.
        A server whose circuit is open starts nothing."""
        desired = models.desired
        present = {(r.server_id, r.replica) for r in kept}
        healthy = {r.server_id for r in kept if self._healthy(models, r)}
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

    @staticmethod
    def _healthy(models: ReadModels, replica: Replica) -> bool:
        server = models.desired.servers.get(replica.server_id)
        if server is None or not replica.info.running:
            return False
        if server.spec.health_check.type == "none":
            return True
        verdict = models.health.replica_health(replica.server_id, replica.replica, replica.info.id)
        return verdict == "healthy"

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
        if not await self._initialised(desired, group, server):
            return
        replicas = [
            r
            for r in range(1, server.replicas + 1)
            if (server_id, r) not in present and self._backoff.due((server_id, r), self._now())
        ]

        async def start(replica: int) -> bool:
            async with limit:
                return await self._start(desired, group, server, replica)

        await asyncio.gather(*(start(r) for r in replicas))

    async def _start(
        self,
        desired: groups.GroupsState,
        group: groups.GroupState,
        server: groups.ServerState,
        replica: int,
        successor: bool = False,
    ) -> bool:
        spec = server.spec
        if self._runner.state(health.PROJECTION).circuit(spec.id).state == "open":
            return False  # it opened while this pass was under way
        limits = desired.limits_of(spec.id)
        labels = {
            **self._owner_labels,
            "dtma.group": group.id,
            "dtma.server": spec.id,
            "dtma.replica": str(replica),
            "dtma.generation": str(server.generation),
        }
        version, secret_env = await self._env_credentials(spec.id)
        if version is not None:
            labels[CREDENTIALS_LABEL] = str(version)
        name = container_name(group.id, spec.id, replica)
        if successor:  # it runs beside the replica's current container for a while
            name = f"{name}-v{version or 0}"
        container = ContainerSpec(
            name=name,
            image=spec.image,
            labels={**spec.labels, **labels},  # a legacy tool's name; DTMA's own labels win
            env={**spec.env, **secret_env},
            secrets_tmpfs=SECRETS_TMPFS,
            command=list(spec.command) if spec.command is not None else None,
            network=network_name(group.id),
            aliases=[spec.id],
            container_port=spec.port,
            memory_mb=limits.memory_mb,
            cpus=limits.cpus,
            pids=limits.pids or 512,
            cap_add=list(spec.cap_add),
            host_ports=spec.host_ports,
        )
        container_id: str | None = None
        try:
            container_id = await self._docker.create_container(container)
            await self._record(
                spec.id,
                events.ContainerCreated(
                    group_id=group.id,
                    server_id=spec.id,
                    replica=replica,
                    container_id=container_id,
                    name=name,
                    generation=server.generation,
                    credentials_version=version,
                ),
                server.changed_at,
            )
            await self._write_config(spec.id, replica, container_id)
            host_port = await self._docker.start_container(container_id)
        except errors.UnavailableError:
            raise
        except errors.ServiceError as exc:
            self._backoff.failed((spec.id, replica), self._now())
            await self._record(
                spec.id,
                events.ContainerFailedToStart(
                    group_id=group.id,
                    server_id=spec.id,
                    replica=replica,
                    reason=exc.message,
                    container_id=container_id,
                ),
                server.changed_at,
            )
            if container_id is not None:
                self.removing.add(container_id)
                await self._docker.remove_container(container_id)
            return False
        address = None
        if host_port is None:  # an internal network publishes nothing: the host uses the IP
            address = (await self._docker.inspect_container(container_id)).ip_address
        await self._record(
            spec.id,
            events.ContainerStarted(
                server_id=spec.id,
                replica=replica,
                container_id=container_id,
                host_port=host_port,
                address=address,
            ),
            server.changed_at,
        )
        return True

    async def _write_config(self, server_id: str, replica: int, container_id: str) -> None:
        """The server's current configuration, into the container before it starts."""
        current = self._runner.state(config.PROJECTION).of(server_id).active()
        if current is None:
            return
        await config_applier.write_config(self._docker, container_id, current.config)
        applied = events.ConfigApplied(
            server_id=server_id, version=current.version, replica=replica, container_id=container_id
        )
        await self._record(server_id, applied, cause=current.position)

    async def _env_credentials(self, server_id: str) -> tuple[int | None, dict[str, str]]:
        """The current credential version and its `env` secrets, decrypted for this container
        only (they go nowhere else: not into the log, not into a label)."""
        active = self._runner.state(credentials.PROJECTION).of(server_id).active()
        if active is None or not active.env_secrets() or self._ring is None:
            return None, {}
        try:
            env = {
                s.name: (await self._ring.decrypt(active.key_id, s.ciphertext)).decode()
                for s in active.env_secrets()
            }
        except KeyringError:  # revoked meanwhile: start it without them
            return None, {}
        return active.version, env

    async def _initialised(
        self, desired: groups.GroupsState, group: groups.GroupState, server: groups.ServerState
    ) -> bool:
        """Run the server's init containers, in order, once per generation; False on a failure.

        They run on the group's network with the server's environment and limits. A failure is
        recorded with the exit code and the tail of the log, and retried with backoff.
        """
        spec = server.spec
        done = self._runner.state(containers.PROJECTION).initialised.get(spec.id)
        if not spec.init_containers or done == server.generation:
            return True
        if not self._backoff.due((spec.id, 0), self._now()):
            return False
        limits = desired.limits_of(spec.id)
        for index, init in enumerate(spec.init_containers, start=1):
            container = ContainerSpec(
                name=f"dtma-{group.id}-{spec.id}-init-{index}",
                image=init.image,
                labels={
                    **self._owner_labels,
                    "dtma.group": group.id,
                    "dtma.server": spec.id,
                    "dtma.init": str(index),
                },
                env=dict(spec.env),
                command=list(init.command) if init.command is not None else None,
                network=network_name(group.id),
                memory_mb=limits.memory_mb,
                cpus=limits.cpus,
                pids=limits.pids or 512,
            )
            try:
                code, output = await self._docker.run_container_to_completion(container)
            except errors.UnavailableError:
                raise
            except errors.ServiceError as exc:
                code, output = -1, exc.message
            if code != 0:
                self._backoff.failed((spec.id, 0), self._now())
                tail = "\n".join(output.strip().splitlines()[-10:])
                await self._record(
                    spec.id,
                    events.ContainerFailedToStart(
                        group_id=group.id,
                        server_id=spec.id,
                        replica=1,
                        reason=f"init container {index} ({init.image}) exited with {code}: {tail}",
                    ),
                    server.generation,
                )
                return False
        await self._record(
            spec.id,
            events.InitContainerCompleted(
                group_id=group.id,
                server_id=spec.id,
                index=len(spec.init_containers),
                image=spec.init_containers[-1].image,
                generation=server.generation,
            ),
            server.generation,
        )
        return True

    # -- retries -----------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _forgive_if_settled(self, models: ReadModels, replica: Replica) -> None:
        """A replica that has been healthy for a minute starts its backoff afresh."""
        started = replica.info.started_at
        settled = started is not None and (datetime.now(UTC) - started).total_seconds() >= SETTLED_S
        if settled and self._healthy(models, replica):
            self._backoff.forgive([(replica.server_id, replica.replica)])

    # -- recording ---------------------------------------------------------------------------

    async def _record(self, server_id: str, event: events.Event, cause: int | None = None) -> None:
        await self._append(server_stream(server_id), event, cause=cause)

    async def _record_group(self, group_id: str, event: events.Event) -> None:
        await self._append(f"network-{group_id}", event)

    async def _append(
        self,
        stream: str,
        event: events.Event,
        idempotency_key: str | None = None,
        cause: int | None = None,
    ) -> None:
        """`cause`: the position of the desired-state event it acts on; else the head it read."""
        metadata = await self._causation.caused_by(cause or self._acted_on)
        await self._store.append(
            stream,
            [self._catalogue.to_new_event(event)],
            None,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )
