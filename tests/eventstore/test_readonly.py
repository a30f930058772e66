"""`EventStore.open_read_only` on both databases: it reads the log, and neither it nor its
engine can write, even where the file or the role would allow it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from eventstore import schema
from eventstore.errors import StoreUnavailableError
from eventstore.records import NewEvent
from eventstore.store import EventStore


async def test_a_read_only_store_reads_the_log_and_refuses_appends(
    store: EventStore, database_url: str
) -> None:
    await store.append("s", [NewEvent("Happened", {"n": 1}), NewEvent("Happened", {"n": 2})], 0)
    reader = await EventStore.open_read_only(database_url)
    try:
        read = await reader.read_all()
        with pytest.raises(StoreUnavailableError, match="read-only"):
            await reader.append("s", [NewEvent("Happened", {"n": 3})], 2)
    finally:
        await reader.close()

    assert [event.position for event in read] == [1, 2]
    assert [event.position for event in await store.read_all()] == [1, 2]


async def test_a_read_only_engine_refuses_writes_the_owner_may_make(
    store: EventStore, database_url: str
) -> None:
    reader = await EventStore.open_read_only(database_url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="(?i)read-?only"):
            async with reader.engine.begin() as connection:
                await connection.execute(
                    schema.checkpoints.insert().values(name="x", position=1, updated_at="now")
                )
    finally:
        await reader.close()

    assert await store.get_checkpoint("x") == 0


async def test_a_read_only_store_follows_what_a_live_writer_appends(
    store: EventStore, database_url: str
) -> None:
    """On SQLite in a writable directory it reads with mode=ro, not immutable=1, which would
    miss commits still in the -wal."""
    await store.append("s", [NewEvent("Happened", {"n": 1})], 0)
    reader = await EventStore.open_read_only(database_url)
    try:
        assert len(await reader.read_all()) == 1
        await store.append("s", [NewEvent("Happened", {"n": 2})], 1)
        later = await reader.read_all()
    finally:
        await reader.close()

    assert [event.position for event in later] == [1, 2]
