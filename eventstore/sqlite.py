"""SQLite's append: one writer thread, one `BEGIN IMMEDIATE` transaction per group commit.

The raw sqlite3 module is used for the hot paths (appending, reading pages): a whole batch
costs one hand-over to the writer thread and one fsync (WAL, synchronous=FULL). Appends queued
while the writer is busy form the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import stat
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from eventstore.batch import AppendRequest, Outcome, key_from_row, plan_batch
from eventstore.errors import EventRejectedError, StoreError, StoreUnavailableError
from eventstore.pending import Pending, settle, take_batch
from eventstore.records import GENESIS_HASH, RecordedEvent
from eventstore.streams import MAX_CACHED_STREAMS, StreamVersions
from eventstore.times import format_time

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
)
INSERT_EVENT = (
    "INSERT INTO events (position, stream_id, stream_version, type, schema_version, data,"
    " metadata, recorded_at, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_KEY = (
    "INSERT INTO idempotency_keys (key, request_hash, stream_id, positions, stream_version,"
    " result, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SELECT_HEAD = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
SELECT_VERSION = "SELECT MAX(stream_version) FROM events WHERE stream_id = ?"
SELECT_CHANGED = (
    "SELECT stream_id, MAX(stream_version) FROM events WHERE position > ? GROUP BY stream_id"
)
SELECT_KEY = (
    "SELECT key, request_hash, stream_id, positions, stream_version, result"
    " FROM idempotency_keys WHERE key = ?"
)
# A value in the batch refused (by a constraint, or by the driver or the chain's hash, which
# cannot encode it): nothing was written, the connection is fine.
REJECTED = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    ValueError,
    OverflowError,
)
SELECT_PAGE = (
    "SELECT position, stream_id, stream_version, type, schema_version, data, metadata,"
    " recorded_at, hash FROM events WHERE position > ? {stream} ORDER BY position LIMIT ?"
)


def keep_private(path: str) -> list[str]:
    """Make the database file `path` 0600 if it is new, and take group's and others' bits off
    it and its -wal and -shm if it is not (SQLite gives those the database file's mode). The
    log holds wrapped data keys and who did what: only its owner reads it. Returns the files
    whose mode had to be narrowed."""
    if not path or path == ":memory:":
        return []
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    narrowed = []
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(os.stat(name).st_mode)
            if mode & 0o077:
                os.chmod(name, mode & 0o700)
                narrowed.append(name)
    return narrowed


def configure(connection: sqlite3.Connection) -> None:
    for pragma in PRAGMAS:
        connection.execute(pragma)


async def fetch_page(
    driver: Any, after: int, limit: int, stream_id: str | None
) -> list[RecordedEvent]:
    """A page of the log through an aiosqlite connection, as plain rows (no ORM rows)."""
    try:
        if stream_id is None:
            rows = await driver.execute_fetchall(SELECT_PAGE.format(stream=""), (after, limit))
        else:
            sql = SELECT_PAGE.format(stream="AND stream_id = ?")
            rows = await driver.execute_fetchall(sql, (after, stream_id, limit))
    except (sqlite3.DatabaseError, ValueError) as exc:  # ValueError: aiosqlite's closed connection
        raise StoreUnavailableError(f"the database is unavailable: {type(exc).__name__}") from exc
    return list(map(RecordedEvent._make, rows))


class SqliteWriter:
    """Appends batches from a dedicated thread that owns one connection."""

    def __init__(
        self, path: str, on_commit: Callable[[], None], cached_streams: int = MAX_CACHED_STREAMS
    ) -> None:
        self._path = path
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: sqlite3.Connection | None = None
        self._head: tuple[int, str] | None = None
        self._versions = StreamVersions(cached_streams)

    def submit(self, pending: Pending) -> None:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._run, name="dtma-sqlite-writer", daemon=True
            )
            self._thread.start()
        self._queue.put(pending)

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = take_batch(first, self._next_or_none)
            outcomes = self._outcomes([pending.request for pending in batch])
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._deliver, batch, outcomes)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                break
        self._disconnect()

    def _next_or_none(self) -> Pending | None:
        try:
            pending = self._queue.get_nowait()
        except queue.Empty:
            return None
        if pending is None:  # a close request: leave it for the loop in _run
            self._queue.put(None)
        return pending

    def _deliver(self, batch: list[Pending], outcomes: Sequence[Outcome]) -> None:
        settle(batch, outcomes)
        self._on_commit()

    def _outcomes(self, requests: Sequence[AppendRequest]) -> Sequence[Outcome]:
        try:
            return self._write(requests)
        except EventRejectedError as exc:
            if len(requests) > 1:  # one of them, or more: each alone gets its own answer
                return [outcome for r in requests for outcome in self._outcomes([r])]
            logger.warning("an append was rejected: %s", exc.reason)
            return [exc]
        except StoreError as exc:
            return [exc] * len(requests)
        except Exception as exc:  # noqa: BLE001 - a surprise must not kill the writer thread
            logger.exception("the SQLite writer failed")
            return [StoreUnavailableError(f"the append failed: {type(exc).__name__}")] * len(
                requests
            )

    def _write(self, requests: Sequence[AppendRequest]) -> list[Outcome]:
        try:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._disconnect()
            raise StoreUnavailableError(f"SQLite refused the append: {exc}") from exc
        try:
            outcomes, head = self._write_locked(connection, requests)
            connection.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            self._head = None
            if isinstance(exc, REJECTED):
                raise EventRejectedError.because_of(exc) from exc
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailableError(f"SQLite refused the append: {exc}") from exc
            raise
        self._head = head
        return outcomes

    def _write_locked(
        self, connection: sqlite3.Connection, requests: Sequence[AppendRequest]
    ) -> tuple[list[Outcome], tuple[int, str]]:
        head = self._current_head(connection)
        streams = [r.stream_id for r in requests]
        self._versions.update((s, _version(connection, s)) for s in self._versions.missing(streams))
        versions = self._versions.get(streams)
        keys = {r.idempotency_key for r in requests if r.idempotency_key}
        known = {
            key: key_from_row(*row)
            for key in keys
            for row in connection.execute(SELECT_KEY, (key,))
        }
        plan = plan_batch(requests, head, versions, known, format_time(datetime.now(UTC)))
        if plan.event_rows:
            connection.executemany(INSERT_EVENT, plan.event_rows)
        if plan.key_rows:
            connection.executemany(INSERT_KEY, plan.key_rows)
        self._versions.record(plan.event_rows)
        return plan.outcomes, (plan.head_position, plan.head_hash)

    def _current_head(self, connection: sqlite3.Connection) -> tuple[int, str]:
        """The head under the write lock; what other processes appended updates the cache."""
        row = connection.execute(SELECT_HEAD).fetchone()
        head = (row[0], row[1]) if row else (0, GENESIS_HASH)
        if self._head is None:
            self._versions.clear()
        elif head != self._head:
            self._versions.update(connection.execute(SELECT_CHANGED, (self._head[0],)))
        return head

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None)
            configure(connection)
            self._connection = connection
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._head = None


def _version(connection: sqlite3.Connection, stream_id: str) -> int:
    row = connection.execute(SELECT_VERSION, (stream_id,)).fetchone()
    return int(row[0] or 0)
