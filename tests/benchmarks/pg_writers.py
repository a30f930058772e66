"""Append throughput on PostgreSQL with 1 and with 8 store instances on one database.

    .venv/bin/python tests/benchmarks/pg_writers.py \\
        --postgres postgresql://dtma:dtma@127.0.0.1:5432/postgres [--appends 4000] [--rounds 3]

32 concurrent appenders in all, split evenly over the stores (each store its own writer
connection, as separate processes would have); each appender makes one-event appends to its
own stream with exact expected versions. Every round runs on a fresh database created (and
dropped) through the --postgres URL, which needs CREATEDB. Prints `metric: value` lines on
stdout: events per second (the best round) and failed appends per writer count, and the
8-to-1 ratio of the same run, which is what compares between runs and machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository
import migrations  # noqa: E402
from eventstore import EventStore, NewEvent, create_engine  # noqa: E402
from tests.support.databases import drop_database  # noqa: E402

APPENDERS = 32
WRITER_COUNTS = (1, 8)


def note(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def fresh_stores(admin_url: str, count: int) -> AsyncIterator[list[EventStore]]:
    name = f"dtma_bench_{os.getpid()}_writers_{count}"
    admin = await asyncpg.connect(admin_url)
    try:
        await drop_database(admin, name)
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        await migrations.upgrade(create_engine(url))
        stores = [await EventStore.open(url) for _ in range(count)]
        try:
            yield stores
        finally:
            for store in stores:
                await store.close()
            await drop_database(admin, name)
    finally:
        await admin.close()


async def appender(store: EventStore, stream: str, appends: int) -> int:
    """Appends `appends` events to `stream`; the number that failed."""
    failed, version = 0, 0
    for n in range(appends):
        try:
            result = await store.append(stream, [NewEvent("Ticked", {"n": n})], version)
            version = result.stream_version
        except Exception:  # noqa: BLE001 - a failed append is the figure measured
            failed += 1
            version = len(await store.read_stream(stream))
    return failed


async def one_round(admin_url: str, writers: int, appends: int) -> tuple[float, int]:
    """(events per second, failed appends) with `writers` stores on a fresh database."""
    async with fresh_stores(admin_url, writers) as stores:
        for index, store in enumerate(stores):  # untimed: connects every writer
            await store.append(f"warm-{index}", [NewEvent("Ticked", {})], 0)
        each = appends // APPENDERS
        started = time.perf_counter()
        failures = await asyncio.gather(
            *(appender(stores[a % writers], f"s-{a}", each) for a in range(APPENDERS))
        )
        elapsed = time.perf_counter() - started
        head, _hash = await stores[0].head()
        report = await stores[0].verify_chain()
        if not report.ok or report.checked != head:
            raise AssertionError(f"the chain does not verify: {report}")
        appended = head - writers
        return appended / elapsed, sum(failures)


async def run(admin_url: str, appends: int, rounds: int) -> None:
    best: dict[int, float] = {}
    for round_number in range(rounds):  # interleaved, so that both see the same load
        for writers in WRITER_COUNTS:
            rate, failed = await one_round(admin_url, writers, appends)
            note(f"round {round_number + 1}, {writers} writers: {rate:.0f}/s, {failed} failed")
            best[writers] = max(best.get(writers, 0.0), rate)
            print(f"pg_writers_{writers}_failed_appends: {failed}", flush=True)
    for writers in WRITER_COUNTS:
        print(f"pg_writers_{writers}_events_per_sec: {best[writers]:.0f}")
    print(f"pg_writers_8_to_1_ratio: {best[8] / best[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, help="an admin URL (CREATEDB)")
    parser.add_argument("--appends", type=int, default=4_000, help="appends per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    note(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, {args.appends} appends a round")
    asyncio.run(run(args.postgres, args.appends, args.rounds))


if __name__ == "__main__":
    main()
