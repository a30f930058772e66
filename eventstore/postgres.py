"""PostgreSQL's append and its change feed.

An append is one statement in its own transaction: the events, their idempotency keys and the
NOTIFY for other processes. The writer knows the head (position, hash) and the streams'
versions from its own last commit; the primary key on `position` and the unique
(stream, version) keep that honest when another process appended meanwhile: the insert
collides, waits for the other transaction, fails, and the writer re-reads and retries. So
positions are handed out densely in commit order, as if a lock were held, at one round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from eventstore.batch import AppendRequest, BatchPlan, Outcome, key_from_row, plan_batch
from eventstore.errors import StoreError, StoreUnavailableError, VersionConflictError
from eventstore.pending import Pending, settle, take_batch
from eventstore.records import GENESIS_HASH, RecordedEvent, StoredIdempotencyKey, format_time
from eventstore.streams import StreamVersions

logger = logging.getLogger(__name__)

CHANNEL = "dtma_events"
MAX_ATTEMPTS = 20
SELECT_HEAD = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
SELECT_VERSIONS = """
SELECT s, (SELECT MAX(stream_version) FROM events WHERE stream_id = s)
  FROM unnest($1::text[]) AS s
"""
SELECT_KEYS = """
SELECT key, request_hash, stream_id, positions, stream_version, result
  FROM idempotency_keys WHERE key = ANY($1::text[])
"""
INSERT_ALL = """
WITH written AS (
  INSERT INTO events (position, stream_id, stream_version, type, schema_version, data,
                      metadata, recorded_at, hash)
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[],
                       $7::text[], $8::text[], $9::text[])
  RETURNING position
), keys AS (
  INSERT INTO idempotency_keys (key, request_hash, stream_id, positions, stream_version, result,
                                recorded_at)
  SELECT * FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::int[],
                       $15::text[], $16::text[])
)
SELECT pg_notify('dtma_events', (SELECT MAX(position) FROM written)::text)
"""
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


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return (
        [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    )


class PostgresWriter:
    """Appends batches over one dedicated connection, reconnecting after a failure."""

    def __init__(self, dsn: str, on_commit: Callable[[], None]) -> None:
        self._dsn = dsn
        self._on_commit = on_commit
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None
        self._head: tuple[int, str] | None = None
        self._versions = StreamVersions()

    def submit(self, pending: Pending) -> None:
        if self._task is None or self._task.done():  # a writer that died is started again
            self._task = asyncio.create_task(self._run(), name="dtma-pg-writer")
        self._queue.put_nowait(pending)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            settle([self._queue.get_nowait()], [StoreUnavailableError("the store is closed")])
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def _run(self) -> None:
        while True:
            batch = take_batch(await self._queue.get(), self._next_or_none)
            try:
                outcomes = await self._outcomes([pending.request for pending in batch])
            except asyncio.CancelledError:
                # Closed mid-append: whether it committed is unknown; the caller may retry
                # with its idempotency key.
                settle(
                    batch,
                    [StoreUnavailableError("the store closed during the append")] * len(batch),
                )
                raise
            settle(batch, outcomes)
            self._on_commit()

    def _next_or_none(self) -> Pending | None:
        return None if self._queue.empty() else self._queue.get_nowait()

    async def _outcomes(self, requests: Sequence[AppendRequest]) -> Sequence[Outcome]:
        try:
            return await self._write(requests)
        except StoreError as exc:
            return [exc] * len(requests)
        except UNAVAILABLE as exc:
            self._forget_connection()
            return [StoreUnavailableError(f"PostgreSQL refused the append: {exc}")] * len(requests)
        except Exception as exc:  # noqa: BLE001 - the writer must outlive what the driver raises
            logger.exception("the append failed unexpectedly; the connection is dropped")
            self._forget_connection()
            failed = StoreUnavailableError(f"the append failed: {type(exc).__name__}")
            return [failed] * len(requests)

    async def _write(self, requests: Sequence[AppendRequest]) -> list[Outcome]:
        connection = await self._connect()
        for _attempt in range(MAX_ATTEMPTS):
            fresh = self._head is None
            if fresh:
                await self._refresh(connection)
            plan = await self._plan(connection, requests)
            if not fresh and any(isinstance(o, VersionConflictError) for o in plan.outcomes):
                self._head = None  # the cache may be behind another process: decide again
                continue
            if not plan.event_rows:
                return plan.outcomes
            try:
                await connection.execute(
                    INSERT_ALL, *_columns(plan.event_rows, 9), *_columns(plan.key_rows, 7)
                )
            except asyncpg.UniqueViolationError:
                self._head = None  # another process appended: re-read and decide again
                continue
            self._head = (plan.head_position, plan.head_hash)
            self._versions.record(plan.event_rows)
            return plan.outcomes
        raise StoreUnavailableError("the append lost every race with other writers; try again")

    async def _refresh(self, connection: Any) -> None:
        row = await connection.fetchrow(SELECT_HEAD)
        self._head = (row[0], row[1]) if row else (0, GENESIS_HASH)
        self._versions.clear()

    async def _plan(self, connection: Any, requests: Sequence[AppendRequest]) -> BatchPlan:
        assert self._head is not None
        streams = [r.stream_id for r in requests]
        missing = self._versions.missing(streams)
        if missing:
            self._versions.update(await connection.fetch(SELECT_VERSIONS, missing))
        known = await self._known_keys(connection, requests)
        now = format_time(datetime.now(UTC))
        return plan_batch(requests, self._head, self._versions.get(streams), known, now)

    async def _known_keys(
        self, connection: Any, requests: Sequence[AppendRequest]
    ) -> dict[str, StoredIdempotencyKey]:
        keys = sorted({r.idempotency_key for r in requests if r.idempotency_key})
        if not keys:
            return {}
        return {row[0]: key_from_row(*row) for row in await connection.fetch(SELECT_KEYS, keys)}

    async def _connect(self) -> Any:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self._dsn)
            self._head = None
        return self._connection

    def _forget_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._head = None
        if connection is not None:
            connection.terminate()


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
