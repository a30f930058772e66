"""Throughput of DTMA's event store on SQLite (and PostgreSQL with --postgres).

    .venv/bin/python tests/benchmarks/store.py --n 20000 \\
        [--postgres postgresql://dtma:dtma@127.0.0.1:5432/postgres] [--backend sqlite|postgres|all]
    .venv/bin/python tests/benchmarks/store.py --n 5000 --profile  # cProfile: SQLite appends, reads

Prints `metric: value` lines (events per second) on stdout; notes go to stderr. Every metric
runs on a fresh SQLite file in a temporary directory, or a fresh PostgreSQL database created
(and dropped) through the --postgres URL, which must name a database the role can connect to
and have CREATEDB. The workload is in bench_workload.py; run this file as a script, so that
its directory is on sys.path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import bench_workload as w
from sqlalchemy.engine import make_url

import migrations
from eventstore import Catalogue, EventStore, NewEvent, create_engine
from eventstore.sqlite import INSERT_EVENT, PRAGMAS
from eventstore.times import format_time

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.support
from tests.support.databases import drop_database  # noqa: E402

RAW_PG_TABLE = """
CREATE TABLE raw_events (
  position bigint PRIMARY KEY,
  stream_id varchar(200) NOT NULL,
  stream_version integer NOT NULL,
  type varchar(200) NOT NULL,
  schema_version integer NOT NULL,
  data text NOT NULL,
  metadata text NOT NULL,
  recorded_at varchar(32) NOT NULL,
  hash varchar(64) NOT NULL,
  UNIQUE (stream_id, stream_version)
)
"""
RAW_PG_INSERT = "INSERT INTO raw_events VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"


def note(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


# -- fresh databases ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_url(backend: str, admin_url: str | None, tag: str) -> AsyncIterator[str]:
    """A URL to an empty database: a new SQLite file, or a PostgreSQL database dropped after."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dtma-bench-") as directory:
            yield f"sqlite:///{Path(directory, 'events.db')}"
        return
    assert admin_url is not None
    name = f"dtma_bench_{os.getpid()}_{tag}"
    admin = await asyncpg.connect(admin_url)
    try:
        await drop_database(admin, name)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            await drop_database(admin, name)
    finally:
        await admin.close()


# The service opens its store with its catalogue, and then every event is decoded through it
# before it is appended (eventstore/storable.py): so does the benchmark, unless --no-catalogue.
CHECKED = True


def bench_catalogue() -> Catalogue:
    catalogue = Catalogue()
    catalogue.register(w.BenchEvent)
    return catalogue


@contextlib.asynccontextmanager
async def fresh_store(backend: str, admin_url: str | None, tag: str) -> AsyncIterator[EventStore]:
    async with fresh_url(backend, admin_url, tag) as url:
        engine = create_engine(url)
        await migrations.upgrade(engine)
        catalogue = bench_catalogue() if CHECKED else None
        store = await EventStore.open(url, engine=engine, catalogue=catalogue)
        try:
            yield store
        finally:
            await store.close()


# -- the workload through the store ------------------------------------------------------------


async def run_plan(store: EventStore, plan: Sequence[w.Append], versions: dict[str, int]) -> None:
    """Append each entry with the stream's real expected version, taken from the last result."""
    for entry in plan:
        events = [NewEvent(type=w.TYPE_NAME, data=data) for data in entry.events]
        result = await store.append(entry.stream, events, versions.get(entry.stream, 0))
        versions[entry.stream] = result.stream_version


async def check_appended(store: EventStore, n: int) -> None:
    position, _hash = await store.head()
    if position != n + 1:  # and the warm-up event
        raise AssertionError(f"expected {n} + 1 events in the log, found {position}")


async def append_single(store: EventStore, n: int) -> float:
    plan = w.single_plan(n)
    await run_plan(store, w.warmup_plan(), {})
    started = time.perf_counter()
    await run_plan(store, plan, {})
    elapsed = time.perf_counter() - started
    await check_appended(store, n)
    return elapsed


async def append_batched(store: EventStore, n: int) -> float:
    plan = w.batched_plan(n)
    await run_plan(store, w.warmup_plan(), {})
    started = time.perf_counter()
    await run_plan(store, plan, {})
    elapsed = time.perf_counter() - started
    await check_appended(store, n)
    return elapsed


async def append_concurrent(store: EventStore, n: int) -> float:
    shares = w.writer_shares(n)
    versions: dict[str, int] = {}  # the writers' streams are disjoint
    await run_plan(store, w.warmup_plan(), {})
    started = time.perf_counter()
    await asyncio.gather(*(run_plan(store, share, versions) for share in shares))
    elapsed = time.perf_counter() - started
    await check_appended(store, n)
    return elapsed


async def read_decoded(store: EventStore, n: int) -> float:
    await run_plan(store, w.batched_plan(n), {})  # untimed: fill the log
    catalogue = bench_catalogue()
    count = 0
    position = 0
    started = time.perf_counter()
    while page := await store.read_all(after=position, limit=w.PAGE):
        for recorded in page:
            catalogue.decode(recorded)
        count += len(page)
        position = page[-1].position
    elapsed = time.perf_counter() - started
    if count != n:
        raise AssertionError(f"read {count} events, expected {n}")
    return elapsed


async def report_stored_size(store: EventStore, n: int) -> None:
    """The size of the first `n` workload events as stored (the warm-up event left out)."""
    warmup = {entry.stream for entry in w.warmup_plan()}
    page = [e for e in await store.read_all(after=0, limit=n + 1) if e.stream_id not in warmup]
    sizes = [
        len(e.data_json.encode())
        + len(e.metadata_json.encode())
        + len(e.type.encode())
        + len(e.stream_id.encode())
        for e in page
    ]
    data = sum(len(e.data_json.encode()) for e in page) / len(page)
    note(
        f"stored event (data + metadata + type + stream id): {sum(sizes) / len(sizes):.1f} bytes on"
        f" average, {min(sizes)}-{max(sizes)}; data {data:.1f}; plus a 64-byte hash, 27-byte time"
    )


# -- raw ceilings ------------------------------------------------------------------------------


def raw_rows(n: int) -> list[tuple[Any, ...]]:
    recorded_at = format_time(datetime.now(UTC))
    return [
        (
            i + 1,
            w.STREAM_IDS[i % w.STREAMS],
            i // w.STREAMS + 1,
            w.TYPE_NAME,
            1,
            w.canonical_json(w.event_data(i)),
            "{}",
            recorded_at,
            f"{i:064x}",
        )
        for i in range(n)
    ]


async def raw_sqlite(n: int) -> float:
    """Stdlib sqlite3 on the store's schema: BEGIN, one INSERT, COMMIT per event."""
    async with fresh_url("sqlite", None, "raw") as url:
        engine = create_engine(url)
        await migrations.upgrade(engine)
        await engine.dispose()
        rows = raw_rows(n)
        connection = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        try:
            for pragma in PRAGMAS:
                connection.execute(pragma)
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
            synchronous = connection.execute("PRAGMA synchronous").fetchone()[0]
            if (mode, synchronous) != ("wal", 2):
                raise AssertionError(f"raw SQLite runs with {mode=} {synchronous=}")
            started = time.perf_counter()
            for row in rows:
                connection.execute("BEGIN")
                connection.execute(INSERT_EVENT, row)
                connection.execute("COMMIT")
            return time.perf_counter() - started
        finally:
            connection.close()


async def raw_postgres(n: int, admin_url: str) -> float:
    """asyncpg, one INSERT per (implicit) transaction into a one-table scratch database."""
    async with fresh_url("postgres", admin_url, "raw") as url:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(RAW_PG_TABLE)
            rows = raw_rows(n)
            started = time.perf_counter()
            for row in rows:
                await connection.execute(RAW_PG_INSERT, *row)
            return time.perf_counter() - started
        finally:
            await connection.close()


# -- driver ------------------------------------------------------------------------------------

METRICS = (
    ("append_single", append_single),
    ("append_batched", append_batched),
    ("append_concurrent", append_concurrent),
    ("read_decoded", read_decoded),
)


async def run_backend(backend: str, n: int, admin_url: str | None) -> None:
    if backend == "sqlite":
        seconds = await raw_sqlite(n)
    else:
        assert admin_url is not None
        seconds = await raw_postgres(n, admin_url)
    w.print_metric(f"{backend}_raw_commit_per_sec", n, seconds)
    for name, measure in METRICS:
        async with fresh_store(backend, admin_url, name) as store:
            seconds = await measure(store, n)
            if name == "append_single" and backend == "sqlite":
                await report_stored_size(store, min(n, 5_000))
        w.print_metric(f"{backend}_{name}_events_per_sec", n, seconds)


async def profile_sqlite_single(n: int, top: int) -> None:
    """cProfile of `n` single-event appends: the event loop's thread, then the writer thread."""
    loop_profile, writer_profile = cProfile.Profile(), cProfile.Profile()
    async with fresh_store("sqlite", None, "profile") as store:
        await run_plan(store, w.warmup_plan(), {})
        writer = store._writer
        write = writer._write  # type: ignore[attr-defined]

        def profiled_write(requests: Any) -> Any:
            writer_profile.enable()
            try:
                return write(requests)
            finally:
                writer_profile.disable()

        writer._write = profiled_write  # type: ignore[attr-defined]
        plan = w.single_plan(n)
        started = time.perf_counter()
        loop_profile.enable()
        await run_plan(store, plan, {})
        loop_profile.disable()
        elapsed = time.perf_counter() - started
    print(f"# {n} single appends in {elapsed:.2f}s ({n / elapsed:.0f}/s, under the profiler)")
    for title, profile in (("event-loop thread", loop_profile), ("writer thread", writer_profile)):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
        print(f"## {title}: top {top} by tottime")
        print(out.getvalue())


async def profile_sqlite_read(n: int, top: int) -> None:
    """cProfile of the decoded read of `n` events (the event loop's thread; the page reads'
    SQLite work shows as its wait in `poll`)."""
    profile = cProfile.Profile()
    async with fresh_store("sqlite", None, "profile-read") as store:
        await run_plan(store, w.batched_plan(n), {})
        catalogue = bench_catalogue()
        position = 0
        started = time.perf_counter()
        profile.enable()
        while page := await store.read_all(after=position, limit=w.PAGE):
            for recorded in page:
                catalogue.decode(recorded)
            position = page[-1].position
        profile.disable()
        elapsed = time.perf_counter() - started
    print(f"# {n} events read and decoded in {elapsed:.3f}s ({n / elapsed:.0f}/s, profiled)")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
    print(f"## decoded read: top {top} by tottime")
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="events per metric")
    parser.add_argument("--postgres", metavar="URL", help="admin URL; adds the postgres_ metrics")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument(
        "--profile", action="store_true", help="profile SQLite single appends and decoded reads"
    )
    parser.add_argument("--top", type=int, default=10, help="rows per profile")
    parser.add_argument(
        "--no-catalogue",
        action="store_true",
        help="append without decoding each event through the catalogue first (the service"
        " always does): what that check costs",
    )
    parser.add_argument(
        "--metrics", help="comma-separated metric names to run (default: all of them)"
    )
    args = parser.parse_args()
    global CHECKED, METRICS
    CHECKED = not args.no_catalogue
    if args.metrics:
        wanted = set(args.metrics.split(","))
        METRICS = tuple((name, measure) for name, measure in METRICS if name in wanted)
    if args.n < 1:
        parser.error("--n must be positive")
    if args.backend == "postgres" and not args.postgres:
        parser.error("--backend postgres needs --postgres URL")
    if args.profile:
        asyncio.run(profile_sqlite_single(args.n, args.top))
        asyncio.run(profile_sqlite_read(args.n, args.top))
        return
    size, smallest, largest, data = w.stored_size(args.n)
    note(
        f"ours, N={args.n}: workload event {size:.1f} bytes stored ({smallest}-{largest}),"
        f" data {data:.1f}"
    )
    backends = [b for b in ("sqlite", "postgres") if args.backend in (b, "all")]
    for backend in backends:
        if backend == "postgres" and not args.postgres:
            continue
        asyncio.run(run_backend(backend, args.n, args.postgres))


if __name__ == "__main__":
    main()
