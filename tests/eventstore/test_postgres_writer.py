"""PostgreSQL's writer with company: several stores on one database, lost answers, settings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventstore import AppendResult, EventStore, NewEvent, StoreUnavailableError
from eventstore.batch import AppendRequest, EncodedEvent, Outcome
from eventstore.pending import Pending
from eventstore.postgres_writer import PostgresWriter
from tests.support.databases import open_migrated_store
from tests.support.proxy import LossyProxy, lossy_proxy

pytestmark = pytest.mark.postgres

STORES = 8
APPENDERS_PER_STORE = 4
APPENDS_EACH = 60


@contextlib.asynccontextmanager
async def stores(url: str, count: int) -> AsyncIterator[list[EventStore]]:
    """`count` stores on one migrated database, each with its own writer connection."""
    opened = [await open_migrated_store(url)]
    try:
        opened += [await EventStore.open(url) for _ in range(count - 1)]
        yield opened
    finally:
        for store in opened:
            await store.close()


async def test_eight_stores_on_one_database_all_append_densely_in_commit_order(
    postgres_url: str,
) -> None:
    async def appender(store: EventStore, name: str) -> list[int | BaseException]:
        answers: list[int | BaseException] = []
        for version in range(APPENDS_EACH):
            try:
                result = await store.append(name, [NewEvent("Ticked", {"n": version})], version)
                answers.extend(result.positions)
            except Exception as exc:  # noqa: BLE001 - counted, then reported
                answers.append(exc)
        return answers

    async with stores(postgres_url, STORES) as opened:
        answered = await asyncio.gather(
            *(
                appender(store, f"a-{s}-{a}")
                for s, store in enumerate(opened)
                for a in range(APPENDERS_PER_STORE)
            )
        )
        failures = [a for answers in answered for a in answers if isinstance(a, BaseException)]
        total = STORES * APPENDERS_PER_STORE * APPENDS_EACH
        logged = await opened[0].read_all(limit=total + 1)
        report = await opened[-1].verify_chain()

    assert failures == []
    assert [e.position for e in logged] == list(range(1, total + 1))
    assert sorted(p for answers in answered for p in answers) == [e.position for e in logged]
    assert report.ok and report.checked == total


async def test_the_writer_commits_synchronously_when_the_database_says_off(
    postgres_url: str,
) -> None:
    admin = await asyncpg.connect(postgres_url)
    try:
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
    finally:
        await admin.close()
    store = await open_migrated_store(postgres_url)
    try:
        await store.append("s-1", [NewEvent("Ticked", {"n": 0})], expected_version=0)
        writer_connection = store._writer._connection  # type: ignore[union-attr]
        other = await asyncpg.connect(postgres_url)
        try:
            default = await other.fetchval("SHOW synchronous_commit")
        finally:
            await other.close()

        assert default == "off"  # what any other session of this database gets
        assert await writer_connection.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await store.close()


def submit(writer: PostgresWriter, stream_id: str, expected: int) -> asyncio.Future[Outcome]:
    event = EncodedEvent("Ticked", 1, f'{{"n":{expected}}}', "{}")
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    writer.submit(Pending(AppendRequest(stream_id, (event,), expected), future))
    return future


@contextlib.asynccontextmanager
async def writer_behind_a_proxy(url: str) -> AsyncIterator[tuple[PostgresWriter, LossyProxy]]:
    """A writer whose connection goes through a proxy, warmed up with one append to stream
    s-1 (connected, statement prepared, stream cached), so its next append to s-1 is a single
    exchange with the server: the one the proxy loses."""
    async with lossy_proxy(url) as proxy:
        writer = PostgresWriter(proxy.url(url), lambda: None)
        try:
            assert isinstance(await submit(writer, "s-1", 0), AppendResult)
            yield writer, proxy
        finally:
            await writer.close()


async def test_a_commit_whose_answer_was_lost_is_reported_committed(postgres_url: str) -> None:
    store = await open_migrated_store(postgres_url)
    try:
        async with writer_behind_a_proxy(postgres_url) as (writer, proxy):
            proxy.lose_answer()
            outcome = await submit(writer, "s-1", 1)
            assert proxy.fired.is_set()
            following = await submit(writer, "s-1", 2)

        assert isinstance(outcome, AppendResult) and outcome.positions == (2,)
        assert isinstance(following, AppendResult) and following.positions == (3,)
        assert [e.version for e in await store.read_stream("s-1")] == [1, 2, 3]
        assert (await store.verify_chain()).ok
    finally:
        await store.close()


async def test_an_append_lost_before_the_server_saw_it_is_reported_unavailable(
    postgres_url: str,
) -> None:
    store = await open_migrated_store(postgres_url)
    try:
        async with writer_behind_a_proxy(postgres_url) as (writer, proxy):
            proxy.lose_request()
            outcome = await submit(writer, "s-1", 1)
            assert proxy.fired.is_set()
            retried = await submit(writer, "s-1", 1)

        assert isinstance(outcome, StoreUnavailableError)
        assert isinstance(retried, AppendResult) and retried.positions == (2,)
        assert [e.version for e in await store.read_stream("s-1")] == [1, 2]
    finally:
        await store.close()


async def test_a_transaction_whose_commit_answer_was_lost_is_reported_committed(
    postgres_url: str,
) -> None:
    """A writer with nothing cached decides under the lock, in a transaction: its COMMIT is
    the exchange lost."""
    store = await open_migrated_store(postgres_url)
    try:
        async with lossy_proxy(postgres_url) as proxy:
            writer = PostgresWriter(proxy.url(postgres_url), lambda: None)
            try:
                proxy.lose_answer(containing=b"COMMIT")
                outcome = await submit(writer, "s-1", 0)
                assert proxy.fired.is_set()
            finally:
                await writer.close()

        assert isinstance(outcome, AppendResult) and outcome.positions == (1,)
        assert [e.version for e in await store.read_stream("s-1")] == [1]
    finally:
        await store.close()
