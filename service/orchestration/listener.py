"""The Docker listener: Docker's event stream (managed containers only) as domain events.

It resumes from the last Docker event time it handled (a checkpoint in the store), so a lost
connection or a daemon restart loses nothing; idempotency keys made of the container, the
action and Docker's own event time keep a replayed event from being appended twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

from eventstore.catalogue import Catalogue
from eventstore.errors import StoreError
from eventstore.store import EventStore
from projections import containers, events
from projections.runner import ProjectionRunner
from service import errors, loops
from service.docker.adapter import DockerAdapter, DockerEvent
from service.handling.causation import Causation
from service.orchestration.reconciler import Reconciler
from service.orchestration.replicas import removed_key, removed_outside

logger = logging.getLogger(__name__)

CHECKPOINT = "docker-listener"
RESUMING = loops.Doubling(first=0.1, ceiling=5.0)


def docker_source(docker_event: DockerEvent) -> str:
    """Names the Docker event a fact records: its causation id."""
    return f"docker:{docker_event.container_id}:{docker_event.action}:{docker_event.time_nano}"


class DockerListener:
    def __init__(
        self,
        store: EventStore,
        runner: ProjectionRunner,
        docker: DockerAdapter,
        catalogue: Catalogue,
        reconciler: Reconciler,
    ) -> None:
        self._store = store
        self._runner = runner
        self._docker = docker
        self._catalogue = catalogue
        self._reconciler = reconciler
        self._oom_killed: set[str] = set()  # containers Docker reported an `oom` for
        self._causation = Causation(store, "docker-listener", actor="docker")
        self._since: int | None = None  # the last Docker event time handled, once known

    async def run(self) -> None:
        # Kept across a restart by the supervisor: nothing since the first start is skipped.
        if self._since is None:
            self._since = await self._store.get_checkpoint(CHECKPOINT) or time.time_ns()
        retry = loops.Retry(RESUMING)
        while True:
            try:
                async for docker_event in self._docker.events(self._since):
                    await self._handle(docker_event)
                    self._since = docker_event.time_nano
                    await self._store.save_checkpoint(CHECKPOINT, self._since)
                    retry.reset()
            except (errors.ServiceError, StoreError) as exc:
                logger.warning("Docker events interrupted (%s); resuming", exc)
            finally:
                # The stream ended or broke: whatever happened meanwhile is replayed from there.
                self._reconciler.poke()
            await asyncio.sleep(retry.next())

    async def _handle(self, docker_event: DockerEvent) -> None:
        if docker_event.action == "oom":  # Docker sends it just before the `die`
            self._oom_killed.add(docker_event.container_id)
        if docker_event.action in ("die", "destroy"):
            fact = await self._fact(docker_event)
            if fact is not None:
                if isinstance(fact, events.ContainerRemoved):
                    key = removed_key(docker_event.container_id)
                else:
                    key = f"docker:{docker_event.container_id}:die:{docker_event.time_nano}"
                await self._store.append(
                    containers.stream_of(fact.server_id),
                    [self._catalogue.to_new_event(fact)],
                    None,
                    idempotency_key=key,
                    metadata=self._causation.observed(docker_source(docker_event)),
                )
            if docker_event.action == "destroy":
                self._reconciler.removing.discard(docker_event.container_id)
                self._oom_killed.discard(docker_event.container_id)
        if docker_event.action in ("die", "destroy", "oom"):
            self._reconciler.poke()

    async def _fact(
        self, docker_event: DockerEvent
    ) -> events.ContainerDied | events.ContainerRemoved | None:
        """The domain event for a death or a removal DTMA did not cause itself, else None."""
        if docker_event.container_id in self._reconciler.removing:
            return None
        await self._runner.current()
        labels = docker_event.labels
        server_id, replica = (
            labels.get("dtma.server", ""),
            int(labels.get("dtma.replica", "0") or 0),
        )
        instance = (
            self._runner.state(containers.PROJECTION).instances.get(server_id, {}).get(replica)
        )
        if instance is None or instance.container_id != docker_event.container_id:
            return None
        if docker_event.action == "destroy":
            return removed_outside(server_id, replica, docker_event.container_id)
        return events.ContainerDied(
            server_id=server_id,
            replica=replica,
            container_id=docker_event.container_id,
            exit_code=docker_event.exit_code,
            oom_killed=docker_event.container_id in self._oom_killed,
        )
