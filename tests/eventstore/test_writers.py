"""Both backends' writers, fed directly (past the store's own checks): one bad append in a
group commit fails alone, and the stream cache's limit never fails a batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy.engine import make_url

from eventstore import AppendResult, EventRejectedError, EventStore
from eventstore.batch import AppendRequest, EncodedEvent, Outcome
from eventstore.pending import Pending
from eventstore.postgres_writer import PostgresWriter
from eventstore.sqlite import SqliteWriter
from eventstore.store import Writer
from eventstore.streams import MAX_CACHED_STREAMS
from tests.support.databases import open_migrated_store

GOOD = '{"note":"fine"}'


@pytest.fixture
async def open_writer(store: EventStore, database_url: str) -> AsyncIterator[Callable[..., Writer]]:
    """Writers of the store's backend on its (migrated) database, closed afterwards."""
    opened: list[Writer] = []

    def make(cached_streams: int = MAX_CACHED_STREAMS) -> Writer:
        url = make_url(database_url)
        writer: Writer
        if url.get_backend_name() == "sqlite":
            writer = SqliteWriter(str(url.database), lambda: None, cached_streams)
        else:
            writer = PostgresWriter(database_url, lambda: None, cached_streams)
        opened.append(writer)
        return writer

    try:
        yield make
    finally:
        for writer in opened:
            await writer.close()


def submit(
    writer: Writer, stream_id: str, expected: int | None, data_json: str = GOOD
) -> asyncio.Future[Outcome]:
    event = EncodedEvent("Happened", 1, data_json, "{}")
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    writer.submit(Pending(AppendRequest(stream_id, (event,), expected), future))
    return future


async def append_with_one_bad(writer: Writer, bad: AppendRequest) -> list[Outcome]:
    """Five good appends with a bad one among them, all queued at once: one group commit
    (on SQLite, the five after the first, which the writer thread takes alone)."""
    answers = [submit(writer, f"good-{n}", 0) for n in range(3)]
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    writer.submit(Pending(bad, future))
    answers += [future, submit(writer, "good-3", 0), submit(writer, "good-4", 0)]
    return list(await asyncio.gather(*answers))


def bad_request(
    stream_id: str = "bad-1", data_json: str = GOOD, expected: int = 0
) -> AppendRequest:
    return AppendRequest(stream_id, (EncodedEvent("Happened", 1, data_json, "{}"),), expected)


async def assert_only_the_bad_one_failed(
    outcomes: list[Outcome], store: EventStore, before: int = 0
) -> None:
    rejected = outcomes.pop(3)
    assert isinstance(rejected, EventRejectedError) and rejected.reason
    assert all(isinstance(o, AppendResult) for o in outcomes), outcomes
    positions = sorted(p for o in outcomes if isinstance(o, AppendResult) for p in o.positions)
    logged = await store.read_all(after=before)
    assert positions == [e.position for e in logged] == list(range(before + 1, before + 6))
    assert sorted(e.stream_id for e in logged) == [f"good-{n}" for n in range(5)]
    assert (await store.verify_chain()).ok


async def test_an_event_with_a_lone_surrogate_fails_alone(
    store: EventStore, open_writer: Callable[..., Writer]
) -> None:
    outcomes = await append_with_one_bad(open_writer(), bad_request(data_json='{"a":"\ud800"}'))

    await assert_only_the_bad_one_failed(outcomes, store)


async def test_appends_after_a_rejected_one_see_the_stream_without_it(
    store: EventStore, open_writer: Callable[..., Writer]
) -> None:
    writer = open_writer()
    bad: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    first = submit(writer, "s-1", 0)
    writer.submit(Pending(bad_request("s-1", '{"a":"\udfff"}', expected=1), bad))
    after = submit(writer, "s-1", 1)  # expects the version the first one makes
    outcomes = await asyncio.gather(first, bad, after)

    assert isinstance(outcomes[1], EventRejectedError)
    assert [o.stream_version for o in outcomes if isinstance(o, AppendResult)] == [1, 2]
    assert [e.version for e in await store.read_stream("s-1")] == [1, 2]


@pytest.mark.postgres
@pytest.mark.parametrize(
    "bad",
    [bad_request(data_json='{"a":"\x00"}'), bad_request(stream_id="s" * 201)],
    ids=["nul-character", "stream-id-longer-than-its-column"],
)
async def test_a_value_postgres_refuses_fails_alone_and_keeps_the_connection(
    postgres_url: str, bad: AppendRequest
) -> None:
    store = await open_migrated_store(postgres_url)
    writer = PostgresWriter(postgres_url, lambda: None)
    try:
        await submit(writer, "warm-up", 0)
        connection = writer._connection
        outcomes = await append_with_one_bad(writer, bad)

        assert writer._connection is connection  # not dropped for a refused value
        await assert_only_the_bad_one_failed(outcomes, store, before=1)
    finally:
        await writer.close()
        await store.close()


async def test_a_batch_past_the_stream_cache_limit_commits(
    store: EventStore, open_writer: Callable[..., Writer]
) -> None:
    writer = open_writer(cached_streams=3)
    first = await asyncio.gather(*(submit(writer, f"c-{n}", 0) for n in range(5)))
    # Cached streams and new ones in one batch, with the cache already over its limit.
    second = await asyncio.gather(*(submit(writer, f"c-{n}", 1) for n in range(3, 8)))
    again = await asyncio.gather(*(submit(writer, f"c-{n}", 0) for n in range(5, 8)))

    assert all(isinstance(o, AppendResult) for o in first)
    assert [type(o).__name__ for o in second] == ["AppendResult"] * 2 + ["VersionConflictError"] * 3
    assert all(isinstance(o, AppendResult) for o in again)
    assert len(await store.read_all()) == 10
