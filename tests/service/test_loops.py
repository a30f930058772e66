"""Retry timing: at once, then 1 s doubling to 60 s; forgiven on settling. Supervised loops:
restarted, counted and backed off."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from service import loops
from service.credentials import oauth
from service.health import monitor
from service.loops import Backoff
from service.orchestration import listener
from tests.support.waiting import wait_until

KEY = ("srv", 1)


def test_the_first_retry_is_immediate_then_delays_double_up_to_a_minute() -> None:
    backoff, now, delays = Backoff(), 0.0, []
    for _ in range(9):
        backoff.failed(KEY, now)
        delay = 0.0 if backoff.due(KEY, now) else backoff.next_in(now, default=999.0)
        delays.append(delay)
        now += delay

    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_try_now_refuses_until_due_and_counts_a_try_as_a_failure() -> None:
    backoff = Backoff()
    assert backoff.try_now(KEY, 0.0) and backoff.try_now(KEY, 0.0)  # the first retry is free
    assert not backoff.try_now(KEY, 0.5)
    assert backoff.try_now(KEY, 1.0)
    assert not backoff.due(KEY, 2.5) and backoff.due(KEY, 3.0)


def test_forgiving_starts_afresh_per_key_or_per_server() -> None:
    backoff = Backoff()
    for key in (KEY, ("srv", 2), ("other", 1)):
        backoff.failed(key, 0.0)
        backoff.failed(key, 0.0)  # now 1 s away
    backoff.forgive([KEY])
    backoff.forgive_servers(["other"])

    assert backoff.due(KEY, 0.0) and backoff.due(("other", 1), 0.0)
    assert not backoff.due(("srv", 2), 0.5)
    assert backoff.next_in(0.0, default=10.0) == 1.0


@pytest.mark.parametrize(
    ("delays", "expected"),
    [
        (loops.REPLICAS, [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]),
        (oauth.RETRIES, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]),
        (listener.RESUMING, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]),
        (monitor.RESUMING, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]),
    ],
)
def test_each_user_keeps_its_delays(delays: loops.Doubling, expected: list[float]) -> None:
    retry = loops.Retry(delays)
    assert [pytest.approx(retry.next()) for _ in expected] == expected
    retry.reset()
    assert retry.next() == expected[0]


async def restarts_of(loop: Callable[[], Awaitable[None]], **options: Any) -> list[str]:
    """Supervise `loop` until it has failed four times; the first four components counted."""
    counted: list[str] = []
    task = asyncio.create_task(loops.supervise("buggy", loop, counted.append, **options))

    async def four() -> bool | None:
        return len(counted) >= 4 or None

    try:
        await wait_until(four, 10, interval=0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return counted[:4]


async def test_a_loop_that_raises_is_logged_counted_and_restarted_ever_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = asyncio.get_running_loop().time
    starts: list[float] = []

    async def buggy() -> None:
        starts.append(clock())
        raise RuntimeError("a bug")

    delays = loops.Doubling(first=0.02, ceiling=0.08)
    assert await restarts_of(buggy, delays=delays) == ["buggy"] * 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    for gap, wanted in zip(gaps, [0.02, 0.04, 0.08], strict=False):
        assert gap >= wanted - 0.005
    logged = [r for r in caplog.records if r.name == "service.loops"]
    assert logged and all(r.exc_info and r.exc_info[0] is RuntimeError for r in logged)


async def test_a_loop_that_returns_is_restarted_as_a_failure() -> None:
    async def ends() -> None:
        return None

    delays = loops.Doubling(first=0.0, ceiling=0.0)
    assert await restarts_of(ends, delays=delays) == ["buggy"] * 4


async def test_without_traceback_only_the_exception_type_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def leaky() -> None:
        raise ValueError("secret-fragment")

    delays = loops.Doubling(first=0.0, ceiling=0.0)
    await restarts_of(leaky, delays=delays, traceback=False)
    assert "ValueError" in caplog.text
    assert "secret-fragment" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)
