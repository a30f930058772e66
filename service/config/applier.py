"""The config applier: writes each server's current configuration to /etc/mcp/config.json in
every running replica (no restart), sends the server's reload signal if it names one, and
records which container holds which version (`ConfigApplied`), so a restarted DTMA rewrites
nothing that is in place. New containers get the file from the reconciler, before they start.

Level-triggered like the credential injector: after every new event it compares what the
config projection says each running container holds with the current version."""

from __future__ import annotations

import asyncio
import logging

from eventstore.catalogue import Catalogue
from eventstore.errors import StoreError
from eventstore.store import EventStore
from projections import config, containers, events, groups
from projections.runner import ProjectionRunner
from service import errors
from service.docker.adapter import DockerAdapter
from service.handling.causation import Causation

logger = logging.getLogger(__name__)

RETRY_S = 5.0


class ConfigApplier:
    def __init__(
        self,
        store: EventStore,
        runner: ProjectionRunner,
        docker: DockerAdapter,
        catalogue: Catalogue,
    ) -> None:
        self._store = store
        self._runner = runner
        self._docker = docker
        self._catalogue = catalogue
        self._causation = Causation(store, "config-applier")
        # (server, version, container) -> when to try again; its failure is recorded once
        self._failed: dict[tuple[str, int, str], float] = {}

    async def run(self) -> None:
        while True:
            try:
                await self.apply_once()
            except (errors.ServiceError, StoreError) as exc:
                logger.warning("config apply paused: %s", type(exc).__name__)
            await self._runner.wait_for(self._runner.position + 1, within=RETRY_S)

    async def apply_once(self) -> None:
        """Bring every running replica of every configured server to its current version."""
        await self._runner.current()  # stopped or behind: nothing written on stale state
        state = self._runner.state(config.PROJECTION)
        observed = self._runner.state(containers.PROJECTION)
        desired = self._runner.state(groups.PROJECTION)
        self._failed = {k: t for k, t in self._failed.items() if state.of(k[0]).current == k[1]}
        for server_id, server in state.servers.items():
            version, declared = server.active(), desired.servers.get(server_id)
            if version is None or declared is None:
                continue
            for instance in observed.of(server_id):
                cid = instance.container_id
                if instance.state != "running" or cid is None:
                    continue
                if server.holds(cid, version.version):
                    continue
                key = (server_id, version.version, cid)
                if self._failed.get(key, 0.0) > self._now():
                    continue
                signal = declared.spec.reload_signal
                await self._apply(server_id, version, instance.replica, cid, signal)

    async def _apply(
        self,
        server_id: str,
        version: config.ConfigVersion,
        replica: int,
        container_id: str,
        signal: str | None,
    ) -> None:
        key = (server_id, version.version, container_id)
        try:
            await self._docker.write_config(container_id, version.config)
            if signal is not None:
                await self._docker.kill_container(container_id, signal)
        except errors.UnavailableError:
            raise
        except errors.ServiceError as exc:
            first = key not in self._failed
            self._failed[key] = self._now() + RETRY_S
            if first:
                failed = events.ConfigApplyFailed(
                    server_id=server_id,
                    version=version.version,
                    replica=replica,
                    container_id=container_id,
                    reason=exc.message,
                )
                await self._append(failed, version.position)
            return
        self._failed.pop(key, None)
        applied = events.ConfigApplied(
            server_id=server_id,
            version=version.version,
            replica=replica,
            container_id=container_id,
            signal=signal,
        )
        await self._append(applied, version.position)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _append(
        self, event: events.ConfigApplied | events.ConfigApplyFailed, cause: int
    ) -> None:
        """`cause`: the position of the version it acts on."""
        await self._store.append(
            containers.stream_of(event.server_id),
            [self._catalogue.to_new_event(event)],
            None,
            metadata=await self._causation.caused_by(cause),
        )
