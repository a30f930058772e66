"""How the background loops wait after a failure: `Doubling` delays, followed by `Retry` for
one loop and by `Backoff` for each of many keys (replicas, OAuth grants). The clock comes in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


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
