"""Polling with a deadline: how the tests wait for something to happen (no bare sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    probe: Callable[[], Awaitable[T | None]],
    within: float,
    *,
    interval: float = 0.1,
    retrying_on: tuple[type[Exception], ...] = (),
) -> T:
    """Await `probe` until it returns a truthy value, and return that value.

    An exception of a `retrying_on` type counts as "not yet". Raises `TimeoutError` after
    `within` seconds, chained to the last such exception.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: Exception | None = None
    while True:
        try:
            result = await probe()
        except retrying_on as exc:
            result, last = None, exc
        if result:
            return result
        if loop.time() >= deadline:
            reason = f"; last error: {last!r}" if last else ""
            raise TimeoutError(f"not there within {within:g} s{reason}") from last
        await asyncio.sleep(interval)
