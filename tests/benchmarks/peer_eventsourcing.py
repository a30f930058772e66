"""The peer: the `eventsourcing` library 9.5.6 on the same workload (bench_workload.py).

Runs in its own venv (run_store.sh makes /tmp/dtma-bench-peer-venv):

    /tmp/dtma-bench-peer-venv/bin/python tests/benchmarks/peer_eventsourcing.py --n 20000 \\
        [--postgres postgresql://dtma:dtma@127.0.0.1:5432/postgres] [--backend sqlite|postgres|all]

Uses the library's recorders directly, as its `Application` does underneath:
`SQLiteApplicationRecorder` on a `SQLiteDatastore` (a file, WAL, synchronous=FULL: checked
before timing) and `PostgresApplicationRecorder` on a `PostgresDatastore` (psycopg 3). An append
is `insert_events([StoredEvent, ...])` with originator_version = the stream's version + 1; the
library's optimistic-concurrency check is the (originator_id, originator_version) primary key.
A read is `select_notifications` in pages of 1,000, each `state` decoded into `BenchEvent` with
pydantic, as ours decodes. The peer is synchronous: the concurrent metric uses 64 threads.

Prints `peer_sqlite_...` / `peer_postgres_...` metric lines (events per second).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import bench_workload as w
import psycopg
from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

PEER_VERSION = "9.5.6"
# Connections for the 64 PostgreSQL writer threads (threads queue for one when all are busy).
# The library serializes inserts with a table lock held to commit, so more would not add
# throughput; 16 keeps the run well under max_connections on a shared server.
PG_POOL = 16
# Seconds a thread may queue for the writer lock (SQLite) or a pooled connection (PostgreSQL);
# raised from the defaults (5 s) so that 64 queued writers on a slow disk time out never.
QUEUE_TIMEOUT = 300.0


def note(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


# -- recorders on fresh databases --------------------------------------------------------------


def full_sync_sqlite(datastore: SQLiteDatastore) -> None:
    """Every pooled connection gets synchronous=FULL (the library sets WAL, not this; SQLite's
    compiled-in default is FULL already on most builds, this makes it certain)."""
    pool = datastore.pool
    create = pool._create_connection

    def create_full() -> Any:
        connection = create()
        connection._sqlite_conn.execute("PRAGMA synchronous=FULL")
        return connection

    pool._create_connection = create_full  # type: ignore[method-assign]


def check_sqlite_durability(datastore: SQLiteDatastore) -> None:
    with datastore.get_connection(commit=False) as connection:
        raw = connection._sqlite_conn
        mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = raw.execute("PRAGMA synchronous").fetchone()[0]
    if (mode.lower(), synchronous) != ("wal", 2):
        raise AssertionError(f"peer SQLite runs with {mode=} {synchronous=}, not WAL + FULL")


@contextlib.contextmanager
def sqlite_recorder(tag: str) -> Iterator[ApplicationRecorder]:
    with tempfile.TemporaryDirectory(prefix="dtma-bench-peer-") as directory:
        datastore = SQLiteDatastore(
            str(Path(directory, "events.db")),
            originator_id_type="text",
            pool_timeout=QUEUE_TIMEOUT,
        )
        full_sync_sqlite(datastore)
        try:
            recorder = SQLiteApplicationRecorder(datastore)
            recorder.create_table()
            check_sqlite_durability(datastore)
            yield recorder
        finally:
            datastore.close()


def pg_parts(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "dbname": parts.path.lstrip("/") or "postgres",
    }


@contextlib.contextmanager
def postgres_recorder(admin_url: str, tag: str, pool_size: int) -> Iterator[ApplicationRecorder]:
    name = f"dtma_bench_peer_{os.getpid()}_{tag}"
    parts = pg_parts(admin_url)
    with psycopg.connect(**parts, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            datastore = PostgresDatastore(
                dbname=name,
                host=parts["host"],
                port=parts["port"],
                user=parts["user"],
                password=parts["password"],
                pool_size=pool_size,
                max_overflow=0,
                connect_timeout=QUEUE_TIMEOUT,
                originator_id_type="text",
            )
            try:
                recorder = PostgresApplicationRecorder(datastore)
                recorder.create_table()
                # Connect all `pool_size` connections before timing. (Not with the datastore's
                # pool_open_timeout: it makes every get_connection() wait on the pool, which
                # psycopg_pool 3.3 asserts against when threads do it at once.)
                datastore.pool.open(wait=True, timeout=60.0)
                yield recorder
            finally:
                datastore.close()
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the workload through the recorder ---------------------------------------------------------


def run_plan(
    recorder: ApplicationRecorder, plan: Sequence[w.Append], versions: dict[str, int]
) -> None:
    """Insert each entry at the stream's next versions, tracked here as the application would."""
    for entry in plan:
        version = versions.get(entry.stream, 0)
        recorder.insert_events(
            [
                StoredEvent(
                    originator_id=entry.stream,
                    originator_version=version + offset,
                    topic=w.TYPE_NAME,
                    state=w.canonical_json(data).encode(),
                )
                for offset, data in enumerate(entry.events, start=1)
            ]
        )
        versions[entry.stream] = version + len(entry.events)


def check_appended(recorder: ApplicationRecorder, n: int) -> None:
    # Both libraries' ids start at 1; the peer's may have gaps on PostgreSQL (a sequence), but
    # not here, where nothing fails.
    head = recorder.max_notification_id()
    if head != n + 1:  # and the warm-up event
        raise AssertionError(f"expected {n} + 1 events, found max notification id {head}")


def append_single(recorder: ApplicationRecorder, n: int) -> float:
    plan = w.single_plan(n)
    run_plan(recorder, w.warmup_plan(), {})
    started = time.perf_counter()
    run_plan(recorder, plan, {})
    elapsed = time.perf_counter() - started
    check_appended(recorder, n)
    return elapsed


def append_batched(recorder: ApplicationRecorder, n: int) -> float:
    plan = w.batched_plan(n)
    run_plan(recorder, w.warmup_plan(), {})
    started = time.perf_counter()
    run_plan(recorder, plan, {})
    elapsed = time.perf_counter() - started
    check_appended(recorder, n)
    return elapsed


def append_concurrent(recorder: ApplicationRecorder, n: int) -> float:
    shares = w.writer_shares(n)
    versions: dict[str, int] = {}  # the writers' streams are disjoint
    errors: list[BaseException] = []
    start = threading.Barrier(len(shares) + 1)

    def writer(share: list[w.Append]) -> None:
        start.wait()
        try:
            run_plan(recorder, share, versions)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    run_plan(recorder, w.warmup_plan(), {})
    started = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    check_appended(recorder, n)
    return elapsed


def read_decoded(recorder: ApplicationRecorder, n: int) -> float:
    run_plan(recorder, w.batched_plan(n), {})  # untimed: fill the log
    count = 0
    last = 0
    started = time.perf_counter()
    while page := recorder.select_notifications(start=last, limit=w.PAGE, inclusive_of_start=False):
        for notification in page:
            w.BenchEvent.model_validate_json(notification.state)
        count += len(page)
        last = page[-1].id
    elapsed = time.perf_counter() - started
    if count != n:
        raise AssertionError(f"read {count} events, expected {n}")
    return elapsed


METRICS: tuple[tuple[str, Callable[[ApplicationRecorder, int], float]], ...] = (
    ("append_single", append_single),
    ("append_batched", append_batched),
    ("append_concurrent", append_concurrent),
    ("read_decoded", read_decoded),
)


def run_backend(backend: str, n: int, admin_url: str | None) -> None:
    for name, measure in METRICS:
        if backend == "sqlite":
            context = sqlite_recorder(name)
        else:
            assert admin_url is not None
            pool = PG_POOL if name == "append_concurrent" else 1
            context = postgres_recorder(admin_url, name, pool)
        with context as recorder:
            seconds = measure(recorder, n)
        w.print_metric(f"peer_{backend}_{name}_events_per_sec", n, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="events per metric")
    parser.add_argument("--postgres", metavar="URL", help="admin URL; adds the postgres metrics")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be positive")
    if args.backend == "postgres" and not args.postgres:
        parser.error("--backend postgres needs --postgres URL")
    version = importlib.metadata.version("eventsourcing")
    if version != PEER_VERSION:
        raise SystemExit(f"expected eventsourcing {PEER_VERSION}, found {version}")
    size, smallest, largest, data = w.stored_size(args.n)
    note(
        f"peer eventsourcing {version}, N={args.n}: workload event {size:.1f}"
        f" bytes stored ({smallest}-{largest}), data {data:.1f}"
    )
    for backend in ("sqlite", "postgres"):
        if args.backend not in (backend, "all") or (backend == "postgres" and not args.postgres):
            continue
        run_backend(backend, args.n, args.postgres)


if __name__ == "__main__":
    main()
