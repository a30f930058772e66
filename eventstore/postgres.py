"""PostgreSQL's append and its change feed.

Appends are serialized by a transaction-scoped advisory lock: positions are handed out and
committed while it is held, so commit order is position order and a reader at N has seen
everything below N. Each commit sends NOTIFY, which other processes LISTEN for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from eventstore.batch import AppendRequest, Outcome, key_from_row, plan_batch
from eventstore.errors import StoreUnavailableError
from eventstore.records import GENESIS_HASH, format_time

logger = logging.getLogger(__name__)

CHANNEL = "dtma_events"
APPEND_LOCK = 0x64746D61  # "dtma"
BEGIN_AND_LOCK = (
    f"BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({APPEND_LOCK})"
)
# The head, the streams' versions and the known keys in one round trip.
READ_STATE = """
SELECT 0 AS kind, NULL::text AS key, position, hash, NULL::text, NULL::text, NULL::int, NULL::text
  FROM (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1) AS head
UNION ALL
SELECT 1, stream_id, MAX(stream_version), NULL, NULL, NULL, NULL, NULL
  FROM events WHERE stream_id = ANY($1::text[]) GROUP BY stream_id
UNION ALL
SELECT 2, key, NULL, request_hash, stream_id, positions, stream_version, result
  FROM idempotency_keys WHERE key = ANY($2::text[])
"""
INSERT_EVENTS = """
WITH written AS (
  INSERT INTO events (position, stream_id, stream_version, type, schema_version, data,
                      metadata, recorded_at, hash)
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[],
                       $7::text[], $8::text[], $9::text[])
  RETURNING position
)
SELECT pg_notify('dtma_events', (SELECT MAX(position) FROM written)::text)
"""
INSERT_KEYS = """
INSERT INTO idempotency_keys (key, request_hash, stream_id, positions, stream_version, result,
                              recorded_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[],
                     $7::text[])
"""
UNAVAILABLE = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def asyncpg_dsn(url: str) -> str:
    """`postgresql+asyncpg://...` (SQLAlchemy's spelling) as asyncpg wants it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class PostgresWriter:
    """Appends batches over one dedicated connection, reconnecting after a failure."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: Any = None

    async def write(self, requests: Sequence[AppendRequest]) -> list[Outcome]:
        try:
            connection = await self._connect()
            await connection.execute(BEGIN_AND_LOCK)
        except UNAVAILABLE as exc:
            await self.close()
            raise StoreUnavailableError(f"PostgreSQL refused the append: {exc}") from exc
        try:
            outcomes = await self._write_locked(connection, requests)
            await connection.execute("COMMIT")
            return outcomes
        except UNAVAILABLE as exc:
            await self._abandon(connection)
            raise StoreUnavailableError(f"PostgreSQL refused the append: {exc}") from exc
        except BaseException:
            await self._abandon(connection)
            raise

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def _connect(self) -> Any:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self._dsn)
        return self._connection

    async def _abandon(self, connection: Any) -> None:
        try:
            await connection.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the connection is dropped either way
            await self.close()

    async def _write_locked(
        self, connection: Any, requests: Sequence[AppendRequest]
    ) -> list[Outcome]:
        streams = sorted({r.stream_id for r in requests})
        keys = sorted({r.idempotency_key for r in requests if r.idempotency_key})
        head, versions, known = (0, GENESIS_HASH), {}, {}
        for row in await connection.fetch(READ_STATE, streams, keys):
            if row[0] == 0:
                head = (row[2], row[3])
            elif row[0] == 1:
                versions[row[1]] = row[2]
            else:
                known[row[1]] = key_from_row(row[1], row[3], row[4], row[5], row[6], row[7])
        plan = plan_batch(requests, head, versions, known, format_time(datetime.now(UTC)))
        if plan.event_rows:
            await connection.execute(INSERT_EVENTS, *zip(*plan.event_rows, strict=True))
        if plan.key_rows:
            await connection.execute(INSERT_KEYS, *zip(*plan.key_rows, strict=True))
        return plan.outcomes


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
