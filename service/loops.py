"""How the background loops wait after a failure (`Doubling` delays; `Retry` for one loop,
`Backoff` per key) and `supervise`, which keeps a loop running through its own bugs: each is
logged, counted and followed by a doubling pause. The clock comes in."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

SETTLED_S = 60.0  # a loop that ran this long before it failed is restarted without waiting long


@dataclass(frozen=True, slots=True)
class Doubling:
    """Delays that double while failures go on: `first`, then twice the last (at least
    `least`, so that a first delay of 0 grows), never more than `ceiling`."""

    first: float
    ceiling: float
    least: float = 0.0

    def after(self, delay: float | None) -> float:
        """The delay that follows `delay` (None: there was none yet)."""
        if delay is None:
            return self.first
        return min(max(delay * 2, self.least), self.ceiling)


# A failing replica (or a server's init containers) is tried again at once the first time,
# then after 1 s, 2 s, 4 s, ... up to 60 s while it keeps failing.
REPLICAS = Doubling(first=0.0, ceiling=60.0, least=1.0)
# A loop that raised starts again after 1 s, then 2 s, ... up to a minute.
RESTARTS = Doubling(first=1.0, ceiling=60.0)


class Retry:
    """The delays of one loop's consecutive failures: `next()` after each, `reset()` once it
    works again."""

    def __init__(self, delays: Doubling) -> None:
        self._delays = delays
        self._last: float | None = None

    def next(self) -> float:
        self._last = self._delays.after(self._last)
        return self._last

    def reset(self) -> None:
        self._last = None


Key = tuple[str, int | str]  # (server id, what of it: a replica, 0 for init containers, ...)


class Backoff:
    """When each key may be tried again, by `delays` (a replica's by default)."""

    def __init__(self, delays: Doubling = REPLICAS) -> None:
        self._delays = delays
        self._next: dict[Key, tuple[float, float]] = {}  # -> (when, the delay that led there)

    def due(self, key: Key, now: float) -> bool:
        when, _ = self._next.get(key, (0.0, 0.0))
        return now >= when

    def failed(self, key: Key, now: float) -> None:
        """Another failure: the next try waits for the next of `delays`."""
        previous = self._next.get(key)
        delay = self._delays.after(None if previous is None else previous[1])
        self._next[key] = (now + delay, delay)

    def try_now(self, key: Key, now: float) -> bool:
        """True if `key` may be tried now, counting it as a failure to back off from."""
        if not self.due(key, now):
            return False
        self.failed(key, now)
        return True

    def forgive(self, keys: Iterable[Key]) -> None:
        """Start afresh (a replica settled, or a recovery attempt that must not wait)."""
        for key in list(keys):
            self._next.pop(key, None)

    def forgive_servers(self, server_ids: Iterable[str]) -> None:
        wanted = set(server_ids)
        self.forgive(k for k in self._next if k[0] in wanted)

    def next_in(self, now: float, default: float) -> float:
        """Seconds until the earliest backed-off key is due (`default` if none is)."""
        pending = [when - now for when, _ in self._next.values() if when > now]
        return max(min(pending, default=default), 0.05)


def uncounted(component: str) -> None:
    """For a loop whose failures nobody counts (a test's, a command's)."""


async def supervise(
    component: str,
    loop: Callable[[], Awaitable[object]],
    failed: Callable[[str], None] = uncounted,
    *,
    delays: Doubling = RESTARTS,
    traceback: bool = True,
) -> None:
    """Run `loop` until cancelled. Each time it raises (or returns: a loop is meant to run
    for good) the failure is logged, `failed(component)` counts it, and `loop` starts again
    after the next of `delays`, afresh if it had run `SETTLED_S`.

    `traceback=False` logs only the exception's type, for loops whose exceptions may quote a
    secret (a fragment of a credential in a decoding error).
    """
    retry = Retry(delays)
    while True:
        began = time.monotonic()
        try:
            await loop()
            error: BaseException | None = None
        except Exception as exc:  # noqa: BLE001 - the one place loops outlive their own bugs
            error = exc
        if time.monotonic() - began >= SETTLED_S:
            retry.reset()
        delay = retry.next()
        _log(component, error, delay, traceback)
        failed(component)
        await asyncio.sleep(delay)


def _log(component: str, error: BaseException | None, delay: float, traceback: bool) -> None:
    if error is None:
        logger.error("%s stopped unexpectedly; restarting it in %.1fs", component, delay)
    elif traceback:
        logger.error(
            "%s failed unexpectedly; restarting it in %.1fs", component, delay, exc_info=error
        )
    else:
        logger.error(
            "%s failed unexpectedly (%s); restarting it in %.1fs",
            component,
            type(error).__name__,
            delay,
        )
