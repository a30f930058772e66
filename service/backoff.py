"""When a failing replica (or a server's init containers) may be tried again: at once the first
time, then after 1 s, 2 s, 4 s, ... up to 60 s while it keeps failing. The clock comes in."""

from __future__ import annotations

from collections.abc import Iterable

MAX_DELAY_S = 60.0

Key = tuple[str, int]  # (server id, replica; 0 for the init containers)


class Backoff:
    def __init__(self) -> None:
        self._next: dict[Key, tuple[float, float]] = {}  # -> (when, the delay that led there)

    def due(self, key: Key, now: float) -> bool:
        when, _ = self._next.get(key, (0.0, 0.0))
        return now >= when

    def failed(self, key: Key, now: float) -> None:
        """Another failure: the next try waits twice as long as the last (0 the first time)."""
        previous = self._next.get(key)
        delay = 0.0 if previous is None else min(max(previous[1] * 2, 1.0), MAX_DELAY_S)
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
