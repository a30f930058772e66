"""One lock per stream for this process's commands: concurrent commands on the same stream
queue here instead of racing to the same expected version and answering 409.

A version conflict can still come from another process appending to the log (another host on
the same PostgreSQL); handlers decide again on those."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class StreamLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def held(self, stream: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(stream, asyncio.Lock())
        self._users[stream] = self._users.get(stream, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[stream] -= 1
            if not self._users[stream]:  # nobody holds or waits: forget it
                del self._users[stream], self._locks[stream]
