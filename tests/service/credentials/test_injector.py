"""The credential injector on a real SQLite log and key ring, writing into real containers: the
current file secrets reach a running replica, an older version is retired once replaced, a
revocation takes the files out, and a failed write is recorded without the secret."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventstore import keyring
from eventstore.records import RecordedEvent
from eventstore.store import EventStore
from projections import ALL, containers, credentials, events, groups, specs
from projections.runner import ProjectionRunner
from service.credentials import injector as credential_injector
from service.docker import adapter
from tests.support.databases import open_migrated_store
from tests.support.docker import run_labels
from tests.support.docker_cli import read_file
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

SECRET_PATH = "/run/secrets/api.key"


@dataclass
class Log:
    store: EventStore
    runner: ProjectionRunner
    ring: keyring.KeyRing

    async def append(self, stream: str, *facts: events.Event) -> int:
        position = 0
        for fact in facts:
            appended = await self.store.append(
                stream, [events.CATALOGUE.to_new_event(fact)], expected_version=None
            )
            position = appended.last_position
        assert await self.runner.wait_for(position, within=10)
        return position

    async def of_type(self, kind: str) -> list[RecordedEvent]:
        return [e for e in await self.store.read_all(0, 10_000) if e.type == kind]

    async def running(self, container_id: str) -> None:
        spec = specs.ServerSpec(id="s", image="example/s:1")
        await self.append(
            groups.stream_of("g"),
            events.GroupDeclared(group_id="g", name="g"),
            events.ServerDeclared(group_id="g", spec=spec),
        )
        await self.append(
            containers.stream_of("s"),
            events.ContainerCreated(
                group_id="g",
                server_id="s",
                replica=1,
                container_id=container_id,
                name=container_id,
                generation=1,
            ),
            events.ContainerStarted(server_id="s", replica=1, container_id=container_id),
        )

    async def inject(self, version: int, value: bytes) -> str:
        """A new version holding `value` as the file secret api.key; return its key id."""
        key_id = await self.ring.create()
        sealed = specs.SealedSecret(
            name="api.key",
            mode="file",
            kind="api_key",
            ciphertext=await self.ring.encrypt(key_id, value),
        )
        injected = events.CredentialsInjected(
            server_id="s", agent_id="agent-1", version=version, key_id=key_id, secrets=(sealed,)
        )
        await self.append(credentials.stream_of("s"), injected)
        return key_id


@pytest.fixture
async def log(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Log]:
    store = await open_migrated_store(sqlite_url)
    runner = ProjectionRunner(store, events.CATALOGUE, ALL)
    try:
        ring = await keyring.load_ring(store.engine, tmp_path / "dtma.key")
        await runner.start()
        yield Log(store, runner, ring)
    finally:
        await runner.stop()
        await store.close()


@pytest.fixture
async def replica(docker: adapter.DockerAdapter, busybox: str) -> str:
    """A running container (swept with the session's); busybox's image has no shell, so the
    files go through Docker's archive API."""
    spec = adapter.ContainerSpec(
        name=f"dtma-test-injector-{secrets.token_hex(4)}",
        image=busybox,
        labels=run_labels(),
        command=["sleep", "3600"],
    )
    container_id = await docker.create_container(spec)
    await docker.start_container(container_id)
    return container_id


@pytest.fixture
async def injecting(
    log: Log, docker: adapter.DockerAdapter
) -> AsyncIterator[credential_injector.CredentialInjector]:
    injector = credential_injector.CredentialInjector(
        log.store, log.runner, docker, log.ring, events.CATALOGUE
    )
    task = asyncio.create_task(injector.run())
    try:
        yield injector
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def new_value() -> bytes:
    return b"secret-" + secrets.token_hex(16).encode()


async def test_writes_the_current_file_secret_into_a_running_replica_and_records_it(
    log: Log, docker: adapter.DockerAdapter, replica: str, injecting: object
) -> None:
    value = new_value()
    await log.running(replica)

    await log.inject(1, value)

    [applied] = await wait_until(lambda: log.of_type("CredentialsApplied"), within=30)
    assert (applied.data["version"], applied.data["container_id"]) == (1, replica)
    assert applied.data["names"] == ["api.key"]
    assert await read_file(docker, replica, SECRET_PATH) == value
    logged = [e.data_json + e.metadata_json for e in await log.store.read_all(0, 10_000)]
    assert not any(value.decode() in text for text in logged)


async def test_retires_the_older_version_once_the_replica_holds_the_new_one(
    log: Log, docker: adapter.DockerAdapter, replica: str, injecting: object
) -> None:
    await log.running(replica)
    first_key = await log.inject(1, new_value())
    await wait_until(lambda: log.of_type("CredentialsApplied"), within=30)
    second = new_value()

    second_key = await log.inject(2, second)

    [retired] = await wait_until(lambda: log.of_type("CredentialsRetired"), within=30)
    assert (retired.data["versions"], retired.data["key_ids"]) == ([1], [first_key])
    assert await read_file(docker, replica, SECRET_PATH) == second
    with pytest.raises(keyring.KeyDestroyedError):
        await log.ring.decrypt(first_key, await log.ring.encrypt(second_key, b"x"))


async def test_a_revocation_takes_the_file_out_of_the_replica_and_destroys_its_key(
    log: Log, docker: adapter.DockerAdapter, replica: str, injecting: object
) -> None:
    await log.running(replica)
    key_id = await log.inject(1, new_value())
    await wait_until(lambda: log.of_type("CredentialsApplied"), within=30)

    revoked = events.CredentialsRevoked(server_id="s", versions=(1,), key_ids=(key_id,))
    await log.append(credentials.stream_of("s"), revoked)

    async def emptied() -> bool:
        return not await read_file(docker, replica, SECRET_PATH)  # blanked: no shell to rm

    await wait_until(emptied, within=30)
    with pytest.raises(keyring.KeyDestroyedError):
        await log.ring.encrypt(key_id, b"x")


async def test_a_failed_write_is_recorded_with_its_reason_and_without_the_secret(
    log: Log, docker: adapter.DockerAdapter, replica: str, injecting: object
) -> None:
    value = new_value()
    await log.running(replica)
    await docker.remove_container(replica)  # the log still has it running

    await log.inject(1, value)

    [failed] = await wait_until(lambda: log.of_type("CredentialsFailed"), within=30)
    assert (failed.data["version"], failed.data["container_id"]) == (1, replica)
    assert "not found" in failed.data["reason"]
    assert value.decode() not in failed.data_json
    assert await log.of_type("CredentialsApplied") == []
