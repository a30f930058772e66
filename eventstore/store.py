"""EventStore: the append-only log on SQLite or PostgreSQL.

Guarantees:
- Global positions are dense (1, 2, 3, ...) and follow commit order on both databases, also
  with several processes appending: a reader that has seen position N has seen every event
  below N.
- An append is atomic: all of its events are written, or none. It returns only once its
  transaction is durable (SQLite WAL with synchronous=FULL; PostgreSQL's default commit).
- Concurrent appends are committed together in one transaction (group commit), each with its
  own expected-version check; a failing check fails only its own append, and so does a value
  the database refuses (EventRejectedError): the others in its batch commit without it.
- An idempotency key is stored in the same transaction as the events it produced; an append
  repeating a known key appends nothing and returns the first append's positions and result.

- Nothing is appended that cannot be read back: stream ids, types and keys are checked to fit
  both databases alike (strict UTF-8, no NUL, within the columns), and, given a catalogue,
  every event is decoded through it exactly as a reader will, before it is queued. A refused
  append fails alone, with EventRejectedError naming the field.

Raises VersionConflictError, IdempotencyConflictError, EventRejectedError and
StoreUnavailableError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import batch, readonly, schema, storable
from eventstore.batch import Outcome, key_from_row
from eventstore.catalogue import Catalogue
from eventstore.chain import ChainReport, ChainVerifier
from eventstore.engines import create_engine
from eventstore.errors import StoreError, StoreUnavailableError
from eventstore.notifier import Notifier
from eventstore.pending import Pending
from eventstore.records import (
    GENESIS_HASH,
    AppendResult,
    NewEvent,
    RecordedEvent,
    Snapshot,
    StoredIdempotencyKey,
)
from eventstore.times import format_time

logger = logging.getLogger(__name__)

DEFAULT_PAGE = 500
EVENT_COLUMNS = (
    schema.events.c.position,
    schema.events.c.stream_id,
    schema.events.c.stream_version,
    schema.events.c.type,
    schema.events.c.schema_version,
    schema.events.c.data,
    schema.events.c.metadata,
    schema.events.c.recorded_at,
    schema.events.c.hash,
)


class Writer(Protocol):
    """A backend's append path: takes queued appends, commits them in batches, settles them."""

    def submit(self, pending: Pending) -> None: ...
    async def close(self) -> None: ...


PageFetcher = Callable[[Any, int, int, "str | None"], Awaitable[list[RecordedEvent]]]


class EventStore:
    """The log. Open with `EventStore.open(url)` on a migrated database; close with `close()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        poll_interval: float,
        fetch_page: PageFetcher,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.engine = engine
        # every event appended must decode through it; None checks storability only
        self.catalogue = catalogue
        self.dialect = engine.dialect.name
        self._poll_interval = poll_interval
        self._fetch_page = fetch_page
        self._notifier = Notifier()
        self._writer: Writer | None = None
        self._listener: Any = None
        self._closed = False
        # told (events appended, seconds taken) after every append that appended: for metrics
        self.append_observers: list[Callable[[int, float], None]] = []

    @classmethod
    async def open(
        cls, url: str, *, engine: AsyncEngine | None = None, catalogue: Catalogue | None = None
    ) -> EventStore:
        """The store on `url`. With a catalogue, an event it cannot decode is never appended."""
        store = cls._reading(url, engine or create_engine(url), catalogue)
        if store.dialect == "sqlite":
            from eventstore import sqlite

            database = make_url(url).database or ":memory:"
            store._writer = sqlite.SqliteWriter(database, store._notifier.notify)
            return store
        from eventstore import postgres_writer

        store._writer = postgres_writer.PostgresWriter(store._dsn(), store._notifier.notify)
        store._listen()
        return store

    @classmethod
    async def open_read_only(cls, url: str) -> EventStore:
        """The log on a database opened read-only (see `readonly`), for readers of a copy.

        It has no writer: `append` raises StoreUnavailableError. On PostgreSQL it LISTENs for
        other processes' appends from the first `subscribe` on, which needs no privilege.

        Raises:
            StoreUnavailableError: SQLite cannot read the file.
        """
        if make_url(url).get_backend_name() == "sqlite":
            url = await asyncio.to_thread(readonly.sqlite_url, url)
        return cls._reading(url, create_engine(url, read_only=True))

    @classmethod
    def _reading(
        cls, url: str, engine: AsyncEngine, catalogue: Catalogue | None = None
    ) -> EventStore:
        if make_url(url).get_backend_name() == "sqlite":
            from eventstore import sqlite

            # Another process's appends are found by polling; this process's wake readers at once.
            return cls(engine, 0.25, sqlite.fetch_page, catalogue)
        from eventstore import postgres

        return cls(engine, 5.0, postgres.fetch_page, catalogue)

    def _dsn(self) -> str:
        from eventstore import postgres

        return postgres.asyncpg_dsn(self.engine.url.render_as_string(hide_password=False))

    def _listen(self) -> None:
        if self._listener is None and self.dialect == "postgresql":
            from eventstore import postgres

            self._listener = postgres.PostgresListener(self._dsn(), self._notifier.notify)
            self._listener.start()

    async def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            await self._listener.close()
        if self._writer is not None:
            await self._writer.close()
        await self.engine.dispose()

    # -- appending -----------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        request_hash: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append `events` to `stream_id` atomically and durably.

        Args:
            expected_version: the stream's version the caller decided on (0: a new stream);
                None appends whatever the version.
            idempotency_key: a repeat with the same key and request appends nothing and gets
                the first answer; the same key for a different request raises.
            metadata: merged into every event's metadata (correlation, causation, actor).
            request_hash: what identifies "the same request" for the key; by default a hash
                of the stream and the events' types and data.
            result: an answer stored with the key and returned to repeats.

        Raises:
            VersionConflictError, IdempotencyConflictError, StoreUnavailableError;
            EventRejectedError (nothing appended) for what could not be stored and read back.
        """
        return await self.submit(
            stream_id,
            events,
            expected_version,
            idempotency_key,
            metadata,
            request_hash=request_hash,
            result=result,
        )

    def submit(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        request_hash: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> Awaitable[AppendResult]:
        """`append`, queued for the writer before this returns; await the answer. Appends
        submitted one after another are written in that order (in one transaction, if they
        arrive together), so a caller may submit the next append to a stream, expecting the
        version the previous one will make, before the previous one is durable."""
        request = batch.encode_request(
            stream_id, events, expected_version, idempotency_key, metadata, request_hash, result
        )
        storable.check(request, self.catalogue)
        if self._closed:
            raise StoreUnavailableError("the store is closed")
        if self._writer is None:
            raise StoreUnavailableError("the store is open read-only")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._writer.submit(Pending(request, future))
        return self._answer(future, len(events), loop.time())

    async def _answer(
        self, future: asyncio.Future[Outcome], count: int, began: float
    ) -> AppendResult:
        outcome = await future
        if isinstance(outcome, StoreError):
            raise outcome
        for observe in self.append_observers:
            observe(count, asyncio.get_running_loop().time() - began)
        return outcome

    # -- reading -------------------------------------------------------------------------

    async def read_all(
        self, after: int = 0, limit: int = DEFAULT_PAGE, stream_id: str | None = None
    ) -> list[RecordedEvent]:
        """Events with position > `after` in position order, at most `limit` of them."""
        with _translated():
            async with self.engine.connect() as connection:
                raw = await connection.get_raw_connection()
                try:
                    return await self._fetch_page(raw.driver_connection, after, limit, stream_id)
                except StoreUnavailableError:
                    await connection.invalidate()  # the pool must not hand out a dead one again
                    raise

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[RecordedEvent]:
        """Every event of one stream after `after_version`, in version order."""
        query = (
            sa.select(*EVENT_COLUMNS)
            .where(schema.events.c.stream_id == stream_id)
            .where(schema.events.c.stream_version > after_version)
            .order_by(schema.events.c.stream_version)
        )
        return await self._fetch_events(query)

    async def head(self) -> tuple[int, str]:
        query = (
            sa.select(schema.events.c.position, schema.events.c.hash)
            .order_by(schema.events.c.position.desc())
            .limit(1)
        )
        rows = await self._fetch(query)
        return (rows[0][0], rows[0][1]) if rows else (0, GENESIS_HASH)

    async def subscribe(
        self, after: int = 0, page_size: int = DEFAULT_PAGE
    ) -> AsyncIterator[RecordedEvent]:
        """Every event after `after`, catching up first, then following new appends forever."""
        self._listen()
        position = after
        while True:
            generation = self._notifier.current()
            page = await self.read_all(position, page_size)
            for event in page:
                position = event.position
                yield event
            if len(page) < page_size:
                await self._notifier.wait(generation, self._poll_interval)

    async def lookup_idempotency_key(self, key: str) -> StoredIdempotencyKey | None:
        t = schema.idempotency_keys.c
        query = sa.select(
            t.key, t.request_hash, t.stream_id, t.positions, t.stream_version, t.result
        )
        rows = await self._fetch(query.where(t.key == key))
        return key_from_row(*rows[0]) if rows else None

    async def verify_chain(self, page_size: int = 5_000) -> ChainReport:
        """Recompute every hash from the stored bytes; name the first position that differs."""
        verifier = ChainVerifier()
        position = 0
        while page := await self.read_all(position, page_size):
            verifier.feed(page)
            position = page[-1].position
        return verifier.report()

    # -- checkpoints and snapshots ------------------------------------------------------------

    async def get_checkpoint(self, name: str) -> int:
        t = schema.checkpoints.c
        rows = await self._fetch(sa.select(t.position).where(t.name == name))
        return int(rows[0][0]) if rows else 0

    async def load_snapshot(self, name: str) -> Snapshot | None:
        t = schema.snapshots.c
        rows = await self._fetch(
            sa.select(t.name, t.position, t.fold_version, t.state).where(t.name == name)
        )
        return Snapshot(*rows[0]) if rows else None

    async def save_checkpoint(
        self, name: str, position: int, snapshots: Sequence[Snapshot] = ()
    ) -> None:
        """Store a consumer's checkpoint and its snapshots in one transaction. Concurrent
        saves (`dtma rebuild` while `serve` runs) all succeed; the last to commit wins."""
        now = format_time(datetime.now(UTC))
        async with self._transaction() as connection:
            await connection.execute(
                self._upsert(schema.checkpoints, name=name, position=position, updated_at=now)
            )
            for snap in snapshots:
                await connection.execute(
                    self._upsert(
                        schema.snapshots,
                        name=snap.name,
                        position=snap.position,
                        fold_version=snap.fold_version,
                        state=snap.state_json,
                        taken_at=now,
                    )
                )

    def _upsert(self, table: sa.Table, name: str, **values: Any) -> Any:
        """INSERT ... ON CONFLICT (name) DO UPDATE: a delete then insert races with itself."""
        insert = (postgres_insert if self.dialect == "postgresql" else sqlite_insert)(table)
        return insert.values(name=name, **values).on_conflict_do_update(
            index_elements=[table.c.name], set_=values
        )

    async def forget_checkpoint(self, name: str, snapshot_names: Sequence[str] = ()) -> None:
        """Drop a checkpoint and snapshots, so the consumer starts again from zero."""
        async with self._transaction() as connection:
            await connection.execute(
                schema.checkpoints.delete().where(schema.checkpoints.c.name == name)
            )
            await connection.execute(
                schema.snapshots.delete().where(schema.snapshots.c.name.in_(list(snapshot_names)))
            )

    # -- plumbing ------------------------------------------------------------------------

    async def _fetch_events(self, query: sa.Select[Any]) -> list[RecordedEvent]:
        return [RecordedEvent(*row) for row in await self._fetch(query)]

    async def _fetch(self, query: sa.Select[Any]) -> list[Any]:
        with _translated():
            async with self.engine.connect() as connection:
                result = await connection.execute(query)
                return list(result.all())

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        with _translated():
            async with self.engine.begin() as connection:
                yield connection


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Driver errors become StoreUnavailableError, once, here."""
    try:
        yield
    except (sa.exc.DBAPIError, sa.exc.InterfaceError, OSError) as exc:
        raise StoreUnavailableError(f"the database is unavailable: {type(exc).__name__}") from exc
