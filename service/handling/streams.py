"""This process's mutable command state: a lock per stream, and the tail (version and state) of
each stream whose decisions state what they leave behind. Nothing else a command sees changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.handling.stream_locks import StreamLocks


class Streams:
    """A stream's tail is what it will hold once every append this process has submitted to it
    is durable: the next command on it decides on that without waiting for the commit. A tail
    is a hint, never the truth: every append still carries its expected version, and a failed
    one forgets the tail so that the next decision reads the log."""

    def __init__(self) -> None:
        self._locks = StreamLocks()
        self._tails: dict[str, tuple[int, object]] = {}

    @asynccontextmanager
    async def held(self, stream: str) -> AsyncIterator[None]:
        async with self._locks.held(stream):
            yield

    def tail(self, stream: str) -> tuple[int, object] | None:
        return self._tails.get(stream)

    def remember(self, stream: str, version: int, state: object) -> None:
        self._tails[stream] = (version, state)

    def forget(self, stream: str) -> None:
        self._tails.pop(stream, None)
