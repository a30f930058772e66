"""The credential injector: puts each server's current file secrets into every running replica
(no restart), records which replicas hold the current version (env secrets arrive with a new
container, which the reconciler starts), and takes revoked files out again.

Level-triggered like the reconciler: after every new event it compares what the credentials
projection says each container holds with what it should hold. Plaintext exists only between
a decrypt and the write into the container."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from eventstore.catalogue import Catalogue
from eventstore.errors import StoreError
from eventstore.keyring import KeyRing, KeyringError
from eventstore.records import RecordedEvent
from eventstore.store import EventStore
from projections import containers, credentials, events
from projections.runner import ProjectionRunner
from service import errors
from service.docker.adapter import DockerAdapter
from service.handling.causation import Causation

logger = logging.getLogger(__name__)

RETRY_S = 5.0


class CredentialInjector:
    def __init__(
        self,
        store: EventStore,
        runner: ProjectionRunner,
        docker: DockerAdapter,
        ring: KeyRing,
        catalogue: Catalogue,
    ) -> None:
        self._store = store
        self._runner = runner
        self._docker = docker
        self._ring = ring
        self._catalogue = catalogue
        # It acts on the credential state as of the runner's position: that is its cause.
        self._causation = Causation(store, "credential-injector")
        self._failed: dict[tuple[str, int, str], float] = {}  # (server, version, container)

    async def run(self) -> None:
        revoked = asyncio.create_task(self._follow_revocations(), name="dtma-credential-revoker")
        try:
            while True:
                try:
                    await self.inject_once()
                except (errors.ServiceError, StoreError) as exc:
                    logger.warning("credential injection paused: %s", type(exc).__name__)
                await self._runner.wait_for(self._runner.position + 1, within=RETRY_S)
        finally:
            revoked.cancel()
            await asyncio.gather(revoked, return_exceptions=True)

    async def inject_once(self) -> None:
        await self._runner.current()  # stopped or behind: nothing injected on stale state
        state = self._runner.state(credentials.PROJECTION)
        observed = self._runner.state(containers.PROJECTION)
        now = asyncio.get_running_loop().time()
        for server_id, server in state.servers.items():
            version = server.active()
            if version is None:
                continue
            pending = False
            for instance in observed.of(server_id):
                cid = instance.container_id
                if instance.state != "running" or cid is None:
                    continue
                if version.applied.get(instance.replica) == cid:
                    continue
                pending = True
                if version.env_secrets() and instance.credentials_version != version.version:
                    continue  # started without them: the reconciler replaces it
                if self._failed.get((server_id, version.version, cid), 0.0) > now:
                    continue
                await self._apply(server_id, version, instance.replica, cid)
            if not pending:
                await self._retire_older(server_id, server, version.version)

    async def _retire_older(
        self, server_id: str, server: credentials.ServerCredentials, current: int
    ) -> None:
        """Once every running replica holds the current version, older ones are forgotten:
        their data keys are destroyed, as for a revocation."""
        older = [v for n, v in server.versions.items() if n < current and not v.forgotten]
        if not older:
            return
        retired = events.CredentialsRetired(
            server_id=server_id,
            versions=tuple(v.version for v in older),
            key_ids=tuple(v.key_id for v in older),
        )
        await self._store.append(
            containers.stream_of(server_id),
            [self._catalogue.to_new_event(retired)],
            None,
            metadata=await self._causation.caused_by(self._runner.position),
        )
        for key_id in retired.key_ids:
            await self._ring.destroy(key_id)

    async def _apply(
        self, server_id: str, version: credentials.Version, replica: int, container_id: str
    ) -> None:
        try:
            for secret in version.file_secrets():
                value = await self._ring.decrypt(version.key_id, secret.ciphertext)
                await self._docker.write_secret_file(container_id, secret.name, value)
        except (errors.ServiceError, KeyringError) as exc:
            why = exc.message if isinstance(exc, errors.ServiceError) else type(exc).__name__
            self._failed[(server_id, version.version, container_id)] = (
                asyncio.get_running_loop().time() + RETRY_S
            )
            outcome: events.CredentialsApplied | events.CredentialsFailed = (
                events.CredentialsFailed(
                    server_id=server_id,
                    version=version.version,
                    reason=f"could not write the files into replica {replica}: {why}",
                    replica=replica,
                    container_id=container_id,
                )
            )
        else:
            outcome = events.CredentialsApplied(
                server_id=server_id,
                version=version.version,
                replica=replica,
                container_id=container_id,
                names=version.names,
            )
        await self._append(outcome)

    async def _follow_revocations(self) -> None:
        """Take the files of revoked versions out of every running replica, as it happens."""
        position = self._runner.position
        while True:
            try:
                async for recorded in self._store.subscribe(position):
                    if recorded.type == "CredentialsRevoked":
                        await self._revoke(recorded)
                    position = recorded.position  # only once done: a pause retries it
            except (errors.ServiceError, StoreError) as exc:
                logger.warning("credential revocation paused: %s", exc)
                await asyncio.sleep(RETRY_S)

    async def _revoke(self, recorded: RecordedEvent) -> None:
        try:
            event = cast(events.CredentialsRevoked, self._catalogue.decode(recorded))
        except Exception:  # noqa: BLE001 - the projections stop on it and say so; pass over
            return
        await self._runner.current()  # the revoked versions' names, as the log has them
        await self._remove_files(event)

    async def _remove_files(self, event: events.CredentialsRevoked) -> None:
        server = self._runner.state(credentials.PROJECTION).of(event.server_id)
        names = {n for v in event.versions if (ver := server.versions.get(v)) for n in ver.names}
        modes = {
            n: m
            for v in event.versions
            if (ver := server.versions.get(v))
            for n, m in ver.modes.items()
        }
        observed = self._runner.state(containers.PROJECTION)
        for instance in observed.of(event.server_id):
            if instance.state != "running" or instance.container_id is None:
                continue
            for name in sorted(n for n in names if modes.get(n) == "file"):
                await self._docker.remove_secret_file(instance.container_id, name)
        for key_id in event.key_ids:  # the command destroyed them; a crash in between did not
            await self._ring.destroy(key_id)

    async def _append(self, event: events.CredentialsApplied | events.CredentialsFailed) -> None:
        await self._store.append(
            containers.stream_of(event.server_id),
            [self._catalogue.to_new_event(event)],
            None,
            metadata=await self._causation.caused_by(self._runner.position),
        )
