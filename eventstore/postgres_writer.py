"""PostgreSQL's append path: one task on one connection commits the queued appends in batches,
every batch under one advisory lock shared by all writers on the database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from eventstore.batch import AppendRequest, BatchPlan, Outcome, key_from_row, plan_batch
from eventstore.errors import (
    EventRejectedError,
    StoreError,
    StoreUnavailableError,
    VersionConflictError,
)
from eventstore.pending import Pending, settle, take_batch
from eventstore.postgres import UNAVAILABLE
from eventstore.records import GENESIS_HASH, StoredIdempotencyKey
from eventstore.streams import MAX_CACHED_STREAMS, StreamVersions
from eventstore.times import format_time

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
# The key of the transaction-scoped advisory lock every append holds until it has committed
# ("dtma" in ASCII): appends from all processes on one database are serialized by it.
APPEND_LOCK = 0x64746D61
LOCK = f"SELECT pg_advisory_xact_lock({APPEND_LOCK})"
# A server set to `off` would acknowledge commits it may still lose; the writer's commits are
# durable before they are answered, whatever the database's or role's default.
SERVER_SETTINGS = {"synchronous_commit": "on"}
# The head, and the streams appended to after position $1 (none if $1 is NULL) with their
# versions: one row per stream, or one with NULLs if there is none; no row for an empty log.
SELECT_HEAD_AND_CHANGED = """
SELECT h.position, h.hash, c.stream_id, c.version
  FROM (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1) AS h
  LEFT JOIN LATERAL (
    SELECT stream_id, MAX(stream_version) AS version FROM events
     WHERE position > $1::bigint AND position <= h.position GROUP BY stream_id
  ) AS c ON true
"""
SELECT_VERSIONS = """
SELECT s, (SELECT MAX(stream_version) FROM events WHERE stream_id = s)
  FROM unnest($1::text[]) AS s
"""
SELECT_KEYS = """
SELECT key, request_hash, stream_id, positions, stream_version, result
  FROM idempotency_keys WHERE key = ANY($1::text[])
"""
# The lock is taken before any row is written: both inserts read their rows through a join
# with `locked`, which cannot yield a row before the lock is held.
INSERT_ALL = f"""
WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock({APPEND_LOCK})),
written AS (
  INSERT INTO events (position, stream_id, stream_version, type, schema_version, data,
                      metadata, recorded_at, hash)
  SELECT e.* FROM locked,
    unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::int[], $6::text[],
           $7::text[], $8::text[], $9::text[]) AS e
  RETURNING position
), keys AS (
  INSERT INTO idempotency_keys (key, request_hash, stream_id, positions, stream_version, result,
                                recorded_at)
  SELECT k.* FROM locked,
    unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::int[], $15::text[],
           $16::text[]) AS k
)
SELECT pg_notify('dtma_events', (SELECT MAX(position) FROM written)::text)
"""
# Ends the backend of a connection that was lost mid-commit (waiting up to 5 s), so that its
# transaction has committed or never will; no row: it had already ended.
END_BACKEND = "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid = $1"
SELECT_HASH = "SELECT hash FROM events WHERE position = $1"
# A value in the batch refused (by the server's data and constraint checks, or by the driver or
# the chain's hash, which cannot encode it): nothing was written, the connection is fine.
REJECTED = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ValueError, OverflowError)
# No answer: whether a commit sent on the connection happened is unknown.
LOST = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, TimeoutError)


class PostgresWriter:
    """Appends batches over one dedicated connection, reconnecting after a failure.

    A batch is planned from the head and stream versions this writer left at its last commit
    and sent in one statement that takes the append lock: if another writer committed
    meanwhile, the rows collide with the primary key on `position` (or the unique
    (stream, version)) and the batch is decided again under the lock, from the head read
    inside it, which cannot fail that way. Every append commits within two attempts; while
    other writers are busy, batches are decided under the lock at once.

    A value the database refuses fails only its own append (EventRejectedError), and a
    commit whose answer was lost is resolved before anyone is answered (`_resolve`)."""

    def __init__(
        self, dsn: str, on_commit: Callable[[], None], cached_streams: int = MAX_CACHED_STREAMS
    ) -> None:
        self._dsn = dsn
        self._on_commit = on_commit
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None
        self._head: tuple[int, str] | None = None
        self._shared = False  # another writer appended between this one's last two batches
        self._versions = StreamVersions(cached_streams)

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
        self._forget_connection()

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
        except EventRejectedError as exc:
            if len(requests) > 1:  # one of them, or more: each alone gets its own answer
                return [outcome for r in requests for outcome in await self._outcomes([r])]
            logger.warning("an append was rejected: %s", exc.reason)
            return [exc]
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
        try:
            if self._head is not None and not self._shared:
                outcomes = await self._write_from_cache(connection, requests)
                if outcomes is not None:
                    return outcomes
            for _attempt in range(MAX_ATTEMPTS):
                outcomes = await self._write_locked(connection, requests)
                if outcomes is not None:
                    return outcomes
        except REJECTED as exc:
            raise EventRejectedError.because_of(exc) from exc
        raise StoreUnavailableError("the append lost every race with other writers; try again")

    async def _write_from_cache(
        self, connection: Any, requests: Sequence[AppendRequest]
    ) -> list[Outcome] | None:
        """One round trip; None if another writer appended since this one's last commit."""
        plan = await self._plan(connection, requests)
        if any(isinstance(o, VersionConflictError) for o in plan.outcomes):
            return None  # the cache may be behind another writer: decide again under the lock
        if not plan.event_rows:
            return plan.outcomes
        try:
            await self._insert(connection, plan)
        except asyncpg.UniqueViolationError:
            return None
        except REJECTED:
            raise
        except LOST:
            await self._resolve(connection, plan)  # the statement's answer was lost
        return self._committed(plan)

    async def _write_locked(
        self, connection: Any, requests: Sequence[AppendRequest]
    ) -> list[Outcome] | None:
        """Decided under the lock, from the head read inside it. None only if a writer that
        takes no lock (an older version of this one) got there first."""
        plan: BatchPlan | None = None
        try:
            async with connection.transaction():
                await connection.execute(LOCK)
                await self._catch_up(connection)
                plan = await self._plan(connection, requests)
                if plan.event_rows:
                    await self._insert(connection, plan)
        except asyncpg.UniqueViolationError:
            return None
        except REJECTED:
            raise
        except LOST:
            if plan is None or not plan.event_rows:
                raise
            await self._resolve(connection, plan)  # the COMMIT's answer may have been lost
        return self._committed(plan)

    async def _insert(self, connection: Any, plan: BatchPlan) -> None:
        columns = (*_columns(plan.event_rows, 9), *_columns(plan.key_rows, 7))
        await connection.execute(INSERT_ALL, *columns)

    async def _resolve(self, lost: Any, plan: BatchPlan) -> None:
        """Returns if `plan` was committed on the lost connection; raises if it was not, or if
        that cannot be found out. Its backend is ended first: then its transaction has
        committed or never will, and the chain's hash at the planned head says which."""
        pid = lost.get_server_pid()
        self._forget_connection()
        try:
            connection = await self._connect()
            ended = await connection.fetchval(END_BACKEND, pid)
            stored = await connection.fetchval(SELECT_HASH, plan.head_position)
        except UNAVAILABLE as exc:
            self._forget_connection()
            raise StoreUnavailableError(
                "the connection was lost during the commit and its outcome is unknown;"
                " repeat the append with its idempotency key"
            ) from exc
        if stored == plan.head_hash:
            logger.warning("the connection was lost during a commit, which had committed")
            return
        if ended is False:  # still running after 5 s: it may yet commit
            raise StoreUnavailableError("the commit's outcome is unknown; its backend lingers")
        raise StoreUnavailableError("the connection was lost before the commit; nothing appended")

    def _committed(self, plan: BatchPlan) -> list[Outcome]:
        if plan.event_rows:
            self._head = (plan.head_position, plan.head_hash)
            self._versions.record(plan.event_rows)
        return plan.outcomes

    async def _catch_up(self, connection: Any) -> None:
        """The head as committed; the versions of streams other writers appended to since."""
        since = None if self._head is None else self._head[0]
        rows = await connection.fetch(SELECT_HEAD_AND_CHANGED, since)
        head = (rows[0][0], rows[0][1]) if rows else (0, GENESIS_HASH)
        if self._head is None or head[0] < self._head[0]:
            self._versions.clear()
        else:
            self._versions.update((row[2], row[3]) for row in rows if row[2] is not None)
        # Others append too: the next batch goes straight to the lock, as a batch planned
        # from this writer's cache would collide with theirs.
        self._shared = self._head is not None and head != self._head
        self._head = head

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
            self._connection = await asyncpg.connect(self._dsn, server_settings=SERVER_SETTINGS)
            self._head = None
        return self._connection

    def _forget_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._head = None
        if connection is not None:
            connection.terminate()


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return (
        [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    )
