"""Crash and cross-process behaviour with real child processes."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from eventstore import NewEvent
from tests.support.databases import open_migrated_store
from tests.support.processes import read_line, start_module, stop


def count_acks(side_file: Path) -> int:
    return len(side_file.read_text().splitlines()) if side_file.exists() else 0


async def wait_for_acks(side_file: Path, count: int, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await asyncio.to_thread(count_acks, side_file) < count:
        assert loop.time() < deadline, "the appender acknowledged too few appends"
        await asyncio.sleep(0.05)


async def test_every_acknowledged_append_survives_kill_9(database_url: str, tmp_path: Path) -> None:
    await (await open_migrated_store(database_url)).close()  # migrated before the child starts
    side_file = tmp_path / "acks.txt"
    child = await start_module("tests.support.appender", database_url, str(side_file))
    try:
        await wait_for_acks(side_file, 300, within=60)
        child.send_signal(signal.SIGKILL)
        await child.wait()
    finally:
        await stop(child)
    # A line cut short by the kill was never acknowledged in full: only whole lines count.
    acked = [line.split() for line in side_file.read_text().splitlines() if len(line.split()) == 3]

    store = await open_migrated_store(database_url)
    try:
        logged = {e.position: e for e in await store.read_all(limit=1_000_000)}
        for position, stream, n in acked:
            assert logged[int(position)].stream_id == stream
            assert logged[int(position)].data == {"n": int(n)}
        assert list(logged) == list(range(1, len(logged) + 1))
        assert len(logged) >= len(acked)
        assert (await store.verify_chain()).ok
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_second_process_subscribed_to_postgres_sees_new_events_at_once(
    postgres_url: str,
) -> None:
    store = await open_migrated_store(postgres_url)
    follower = await start_module("tests.support.follower", postgres_url)
    try:
        assert await read_line(follower, within=30) == "ready"
        loop = asyncio.get_running_loop()
        for n in range(1, 4):
            started = loop.time()
            await store.append("live-1", [NewEvent("Ping", {"n": n})], expected_version=n - 1)
            assert await read_line(follower, within=10) == str(n)
            # The store's fallback poll is 5 s: arriving well before it means NOTIFY woke it.
            assert loop.time() - started < 2.0
    finally:
        await stop(follower)
        await store.close()
