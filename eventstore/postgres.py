"""PostgreSQL's reads and change feed: pages of the log, and LISTEN for commits from any
process. The append path is `postgres_writer.py`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from eventstore.errors import StoreUnavailableError
from eventstore.records import RecordedEvent

logger = logging.getLogger(__name__)

CHANNEL = "dtma_events"
SELECT_PAGE = """
SELECT position, stream_id, stream_version, type, schema_version, data, metadata, recorded_at,
       hash
  FROM events WHERE position > $1 {stream} ORDER BY position LIMIT $2
"""
UNAVAILABLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def asyncpg_dsn(url: str) -> str:
    """`postgresql+asyncpg://...` (SQLAlchemy's spelling) as asyncpg wants it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def fetch_page(
    driver: Any, after: int, limit: int, stream_id: str | None
) -> list[RecordedEvent]:
    """A page of the log through an asyncpg connection, as plain records (no ORM rows)."""
    try:
        if stream_id is None:
            rows = await driver.fetch(SELECT_PAGE.format(stream=""), after, limit)
        else:
            rows = await driver.fetch(
                SELECT_PAGE.format(stream="AND stream_id = $3"), after, limit, stream_id
            )
    except UNAVAILABLE as exc:  # the driver's own errors: SQLAlchemy never saw this query
        raise StoreUnavailableError(f"the database is unavailable: {type(exc).__name__}") from exc
    return list(map(RecordedEvent._make, rows))


class PostgresListener:
    """LISTENs on the events channel and calls `on_change` for every commit, from any process.

    After a lost connection it reconnects with backoff and calls `on_change` once, so that
    subscribers re-read whatever was committed while it was away.
    """

    def __init__(self, dsn: str, on_change: Callable[[], None]) -> None:
        self._dsn = dsn
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dtma-pg-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                connection = await asyncpg.connect(self._dsn)
            except UNAVAILABLE as exc:
                logger.warning("cannot LISTEN for new events (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            await self._listen(connection)

    async def _listen(self, connection: Any) -> None:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, lambda *_args: self._on_change())
            self._on_change()
            await lost.wait()
        except UNAVAILABLE as exc:
            logger.warning("lost the LISTEN connection: %s", exc)
        finally:
            connection.terminate()
