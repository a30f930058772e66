"""A database's names for itself: made once, the same ever after, one under concurrency."""

from __future__ import annotations

import asyncio

from eventstore.identity import identity
from eventstore.store import EventStore
from tests.support.databases import open_migrated_store


async def test_an_identity_is_made_once_and_read_back_by_every_later_store(
    store: EventStore, database_url: str
) -> None:
    made = await identity(store.engine, "instance")
    other = await open_migrated_store(database_url)
    try:
        assert await identity(other.engine, "instance") == made
        assert await identity(other.engine, "another") != made
    finally:
        await other.close()
    assert len(made) == 16 and int(made, 16) >= 0


async def test_concurrent_first_requests_from_two_stores_agree_on_one_identity(
    store: EventStore, database_url: str
) -> None:
    other = await open_migrated_store(database_url)
    try:
        found = await asyncio.gather(*(identity(s.engine, "instance") for s in [store, other] * 8))
    finally:
        await other.close()
    assert len(set(found)) == 1
    assert (await store.head())[0] == 0  # the log itself is untouched
