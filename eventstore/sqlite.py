"""SQLite's append: one writer thread, one `BEGIN IMMEDIATE` transaction per group commit.

The raw sqlite3 module is used here (and only here) because the append is the hot path: a
whole batch costs one hop to the writer thread and one fsync (WAL, synchronous=FULL).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from eventstore.batch import AppendRequest, Outcome, key_from_row, plan_batch
from eventstore.errors import StoreUnavailableError
from eventstore.records import GENESIS_HASH, format_time

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
# SQLite's default limit on bound parameters is 32766; batches stay far below it.
MAX_PARAMS = 30_000


def configure(connection: sqlite3.Connection) -> None:
    for pragma in PRAGMAS:
        connection.execute(pragma)


class SqliteWriter:
    """Appends batches from a dedicated thread that owns one connection."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dtma-sqlite-writer")
        self._connection: sqlite3.Connection | None = None

    async def write(self, requests: Sequence[AppendRequest]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._write, requests)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None)
            configure(connection)
            self._connection = connection
        return self._connection

    def _write(self, requests: Sequence[AppendRequest]) -> list[Outcome]:
        try:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._close()
            raise StoreUnavailableError(f"SQLite refused the append: {exc}") from exc
        try:
            outcomes = self._write_locked(connection, requests)
            connection.execute("COMMIT")
            return outcomes
        except sqlite3.Error as exc:
            _rollback(connection)
            raise StoreUnavailableError(f"SQLite refused the append: {exc}") from exc
        except BaseException:
            _rollback(connection)
            raise

    def _write_locked(
        self, connection: sqlite3.Connection, requests: Sequence[AppendRequest]
    ) -> list[Outcome]:
        row = connection.execute(
            "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
        ).fetchone()
        head = (row[0], row[1]) if row else (0, GENESIS_HASH)
        streams = sorted({r.stream_id for r in requests})
        versions = dict(
            _select_in(
                connection,
                "SELECT stream_id, MAX(stream_version) FROM events WHERE stream_id IN ({})"
                " GROUP BY stream_id",
                streams,
            )
        )
        keys = sorted({r.idempotency_key for r in requests if r.idempotency_key})
        known = {
            row[0]: key_from_row(*row)
            for row in _select_in(
                connection,
                "SELECT key, request_hash, stream_id, positions, stream_version, result"
                " FROM idempotency_keys WHERE key IN ({})",
                keys,
            )
        }
        plan = plan_batch(requests, head, versions, known, format_time(datetime.now(UTC)))
        if plan.event_rows:
            connection.executemany(INSERT_EVENT, plan.event_rows)
        if plan.key_rows:
            connection.executemany(INSERT_KEY, plan.key_rows)
        return plan.outcomes


def _select_in(connection: sqlite3.Connection, sql: str, values: Sequence[str]) -> list[Any]:
    rows: list[Any] = []
    for start in range(0, len(values), MAX_PARAMS):
        chunk = values[start : start + MAX_PARAMS]
        rows.extend(connection.execute(sql.format(",".join("?" * len(chunk))), chunk))
    return rows


def _rollback(connection: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        connection.execute("ROLLBACK")
