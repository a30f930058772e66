"""The store's guarantees, on a SQLite file and on a real PostgreSQL server (same tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from eventstore import (
    AppendResult,
    EventStore,
    IdempotencyConflictError,
    NewEvent,
    Snapshot,
    StoreUnavailableError,
    VersionConflictError,
)
from eventstore.engines import create_engine
from tests.support.databases import open_migrated_store


def event(n: int = 0, kind: str = "Happened") -> NewEvent:
    return NewEvent(type=kind, data={"n": n, "note": "something happened"})


@pytest.fixture
async def second_store(database_url: str, store: EventStore) -> AsyncIterator[EventStore]:
    """Another writer on the same database, with its own connections and group commit."""
    other = await EventStore.open(database_url)
    try:
        yield other
    finally:
        await other.close()


async def test_appends_get_dense_positions_and_stream_versions(store: EventStore) -> None:
    first = await store.append("order-1", [event(1), event(2)], expected_version=0)
    second = await store.append("order-2", [event(3)], expected_version=0)
    third = await store.append("order-1", [event(4)], expected_version=2)

    assert first.positions == (1, 2) and first.stream_version == 2
    assert second.positions == (3,)
    assert third.positions == (4,) and third.stream_version == 3
    stream = await store.read_stream("order-1")
    assert [(e.position, e.version, e.data["n"]) for e in stream] == [
        (1, 1, 1),
        (2, 2, 2),
        (4, 3, 4),
    ]
    assert [e.position for e in await store.read_all(after=1, limit=2)] == [2, 3]
    assert [e.position for e in await store.read_all(stream_id="order-2")] == [3]


async def test_conflict_between_two_writers_names_stream_expected_and_actual(
    store: EventStore, second_store: EventStore
) -> None:
    await store.append("cart-7", [event()], expected_version=0)
    version = len(await second_store.read_stream("cart-7"))

    await store.append("cart-7", [event(1)], expected_version=version)
    with pytest.raises(VersionConflictError) as raised:
        await second_store.append("cart-7", [event(2)], expected_version=version)

    assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == ("cart-7", 1, 2)
    assert [e.data["n"] for e in await store.read_stream("cart-7")] == [0, 1]


async def test_new_stream_expectation_fails_when_the_stream_exists(store: EventStore) -> None:
    await store.append("x-1", [event()], expected_version=0)
    with pytest.raises(VersionConflictError):
        await store.append("x-1", [event()], expected_version=0)


async def test_repeated_idempotency_key_returns_first_answer_and_appends_nothing(
    store: EventStore,
) -> None:
    first = await store.append("pay-1", [event(1)], 0, idempotency_key="k-1", result={"ok": 1})
    again = await store.append("pay-1", [event(1)], 0, idempotency_key="k-1", result={"ok": 2})

    assert again.positions == first.positions and again.replayed and not first.replayed
    assert again.result == {"ok": 1}
    assert len(await store.read_all()) == 1
    with pytest.raises(IdempotencyConflictError):
        await store.append("pay-1", [event(2)], None, idempotency_key="k-1")
    known = await store.lookup_idempotency_key("k-1")
    assert known is not None and known.positions == first.positions


async def test_concurrent_repeats_of_one_key_append_once(
    store: EventStore, second_store: EventStore
) -> None:
    appends = [
        s.append("pay-2", [event(5)], None, idempotency_key="same")
        for s in (store, second_store)
        for _ in range(10)
    ]
    results = await asyncio.gather(*appends)

    assert {r.positions for r in results} == {(1,)}
    assert len(await store.read_all()) == 1


async def test_positions_stay_dense_under_64_concurrent_writers(
    store: EventStore, second_store: EventStore
) -> None:
    async def writer(n: int) -> list[int]:
        target = store if n % 2 else second_store
        positions = []
        for i in range(15):
            result = await target.append(f"w-{n}", [event(i)], expected_version=i)
            positions.extend(result.positions)
        return positions

    written = await asyncio.gather(*(writer(n) for n in range(64)))

    everything = await store.read_all(limit=10_000)
    assert [e.position for e in everything] == list(range(1, 64 * 15 + 1))
    assert sorted(p for ps in written for p in ps) == [e.position for e in everything]
    for n in range(64):
        assert [e.version for e in await store.read_stream(f"w-{n}")] == list(range(1, 16))
    assert (await store.verify_chain()).ok


async def test_one_failing_check_in_a_group_commit_does_not_fail_the_others(
    store: EventStore,
) -> None:
    await store.append("g-1", [event()], expected_version=0)
    outcomes = await asyncio.gather(
        store.append("g-2", [event()], expected_version=0),
        store.append("g-1", [event()], expected_version=0),  # stale
        store.append("g-3", [event()], expected_version=0),
        return_exceptions=True,
    )

    assert isinstance(outcomes[1], VersionConflictError)
    assert not isinstance(outcomes[0], BaseException) and not isinstance(outcomes[2], BaseException)
    assert [e.stream_id for e in await store.read_all()] == ["g-1", "g-2", "g-3"]


async def test_appends_submitted_in_a_row_land_in_that_order(store: EventStore) -> None:
    """Each expects the version the one before it will make, before that one is durable; one
    expecting a version that will not be there fails alone."""
    answers = [
        store.submit("s-1", [event(1)], expected_version=0),
        store.submit("s-1", [event(2)], expected_version=1),
        store.submit("s-1", [event(3)], expected_version=1),
        store.submit("s-1", [event(4)], expected_version=2),
    ]
    outcomes = await asyncio.gather(*answers, return_exceptions=True)

    assert [o.stream_version for o in outcomes if isinstance(o, AppendResult)] == [1, 2, 3]
    assert isinstance(outcomes[2], VersionConflictError)
    assert [e.data["n"] for e in await store.read_stream("s-1")] == [1, 2, 4]


async def test_subscribe_catches_up_then_follows_live_appends(store: EventStore) -> None:
    await store.append("s-1", [event(1), event(2)], expected_version=0)
    seen: list[int] = []

    async def follow() -> None:
        async for recorded in store.subscribe(after=0, page_size=1):
            seen.append(recorded.position)
            if len(seen) == 4:
                return

    follower = asyncio.create_task(follow())
    await store.append("s-2", [event(3), event(4)], expected_version=0)
    await asyncio.wait_for(follower, timeout=10)
    assert seen == [1, 2, 3, 4]


async def test_a_tampered_row_breaks_the_chain_at_its_position(store: EventStore) -> None:
    for n in range(5):
        await store.append(f"t-{n}", [event(n)], expected_version=0)
    assert (await store.verify_chain()).ok

    async with store.engine.begin() as connection:
        await connection.execute(
            sa.text("UPDATE events SET data = :data WHERE position = 3"), {"data": '{"n":99}'}
        )
    report = await store.verify_chain()

    assert not report.ok and report.first_bad_position == 3 and report.checked == 5


async def test_a_deleted_row_breaks_the_chain(store: EventStore) -> None:
    for n in range(4):
        await store.append("d-1", [event(n)], expected_version=n)
    async with store.engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM events WHERE position = 2"))
    assert (await store.verify_chain()).first_bad_position == 3


async def test_checkpoint_and_snapshots_are_saved_together_and_forgotten(store: EventStore) -> None:
    snap = Snapshot(name="things", position=7, fold_version=2, state_json='{"a":1}')
    await store.save_checkpoint("readers", 7, [snap])
    await store.save_checkpoint("readers", 9, [Snapshot("things", 9, 2, '{"a":2}')])

    assert await store.get_checkpoint("readers") == 9
    loaded = await store.load_snapshot("things")
    assert loaded is not None and (loaded.position, loaded.state_json) == (9, '{"a":2}')
    await store.forget_checkpoint("readers", ["things"])
    assert await store.get_checkpoint("readers") == 0
    assert await store.load_snapshot("things") is None


async def test_events_keep_type_schema_version_metadata_and_time(store: EventStore) -> None:
    new = NewEvent(
        type="Renamed", data={"to": "b"}, schema_version=2, metadata={"causation_id": "c"}
    )
    await store.append("r-1", [new], 0, idempotency_key="ik", metadata={"actor": "tester"})
    [recorded] = await store.read_all()

    assert (recorded.type, recorded.schema_version, recorded.data) == ("Renamed", 2, {"to": "b"})
    assert recorded.metadata == {"actor": "tester", "causation_id": "c", "idempotency_key": "ik"}
    assert recorded.recorded_at.endswith("Z") and len(recorded.hash) == 64


async def test_an_unreachable_database_raises_unavailable_without_appending() -> None:
    url = "postgresql://dtma:dtma@127.0.0.1:1/nowhere"
    store = await EventStore.open(url, engine=create_engine(url))
    try:
        with pytest.raises(StoreUnavailableError):
            await store.append("u-1", [event()], expected_version=0)
        with pytest.raises(StoreUnavailableError):
            await store.read_all()
    finally:
        await store.close()


async def test_a_store_reopened_on_the_same_database_continues_the_chain(database_url: str) -> None:
    first = await open_migrated_store(database_url)
    await first.append("c-1", [event(1)], expected_version=0)
    await first.close()
    again = await open_migrated_store(database_url)
    try:
        result = await again.append("c-1", [event(2)], expected_version=1)
        assert result.positions == (2,)
        assert (await again.verify_chain()).ok
    finally:
        await again.close()


@pytest.mark.postgres
async def test_the_postgres_writer_outlives_an_unexpected_error(postgres_url: str) -> None:
    store = await open_migrated_store(postgres_url)
    try:
        writer = store._writer
        await store.append("w-1", [event(1)], expected_version=0)
        original = writer._write  # type: ignore[union-attr]

        async def broken(requests: object) -> object:
            writer._write = original  # type: ignore[union-attr]
            raise RuntimeError("a driver bug")

        writer._write = broken  # type: ignore[union-attr]
        with pytest.raises(StoreUnavailableError, match="RuntimeError"):
            await store.append("w-1", [event(2)], expected_version=1)
        writer._task.cancel()  # type: ignore[union-attr]  # a writer that died anyway
        await asyncio.gather(writer._task, return_exceptions=True)  # type: ignore[union-attr]
        await store.append("w-1", [event(3)], expected_version=1)
        assert [e.data["n"] for e in await store.read_stream("w-1")] == [1, 3]
    finally:
        await store.close()


async def test_concurrent_checkpoint_saves_all_succeed_and_the_last_wins(
    store: EventStore, second_store: EventStore
) -> None:
    """`dtma rebuild` saving while `serve` saves: two stores, one consumer name."""

    async def save(target: EventStore, position: int) -> None:
        snap = Snapshot("things", position, 1, f'{{"at":{position}}}')
        await target.save_checkpoint("readers", position, [snap])

    await asyncio.gather(*(save((store, second_store)[p % 2], p) for p in range(1, 41)))

    position = await store.get_checkpoint("readers")
    loaded = await store.load_snapshot("things")
    assert 1 <= position <= 40
    assert loaded is not None and (loaded.position, loaded.state_json) == (
        position,
        f'{{"at":{position}}}',
    )
    await save(second_store, 41)
    assert await store.get_checkpoint("readers") == 41
