"""aiosqlite connections under SQLAlchemy: a cancelled query must not leave a task that
outlives the event loop's shutdown (the hang of a stopping service or a test's teardown).

The steps below are SQLAlchemy's when it terminates a connection whose query was cancelled:
a graceful `close()` in a task, then `stop()` when that wait is cancelled too; and at exit
`asyncio.run` cancels every task left exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import pytest

from eventstore.engines import create_engine
from eventstore.sqlite_connections import StopOnceConnection

DEADLINE_S = 2.0
SLOW_QUERY = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)"
    " SELECT count(*) FROM n"
)


@asynccontextmanager
async def abandoned_close(kind: type[aiosqlite.Connection]) -> AsyncIterator[asyncio.Task[None]]:
    """A close left behind while the worker thread is busy, then cancelled once."""
    connection = kind(lambda: sqlite3.connect(":memory:"), 64)
    await connection
    busy = asyncio.ensure_future(connection.execute(SLOW_QUERY))
    graceful = asyncio.ensure_future(connection.close())
    await asyncio.sleep(0)  # one loop turn: the close is queued behind the query
    connection.stop()  # the force close
    graceful.cancel()
    try:
        yield graceful
    finally:
        await asyncio.to_thread(connection._thread.join)  # the query ends; then the thread
        busy.cancel()


async def test_an_abandoned_close_ends_when_cancelled() -> None:
    async with abandoned_close(StopOnceConnection) as graceful:
        done, _ = await asyncio.wait({graceful}, timeout=DEADLINE_S)
        assert graceful in done


async def test_stock_aiosqlite_still_needs_the_guard() -> None:
    """If this fails, aiosqlite fixed its double stop: `sqlite_connections` can go."""
    async with abandoned_close(aiosqlite.Connection) as graceful:
        done, _ = await asyncio.wait({graceful}, timeout=DEADLINE_S)
        assert graceful not in done
        graceful.cancel()  # a second cancellation frees it
        with pytest.raises(asyncio.CancelledError):
            await graceful


async def test_a_stopped_connection_still_closes() -> None:
    connection = StopOnceConnection(lambda: sqlite3.connect(":memory:"), 64)
    await connection
    connection.stop()
    await asyncio.wait_for(connection.close(), DEADLINE_S)


async def test_the_engine_guards_its_connections(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'guarded.db'}")
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            assert isinstance(raw.driver_connection, StopOnceConnection)
    finally:
        await engine.dispose()
