"""Wakes readers when the log grows: a fresh asyncio.Event per generation."""

from __future__ import annotations

import asyncio
import contextlib


class Notifier:
    """Take `current()` before reading; `wait()` on it returns at once if the log grew since."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    @staticmethod
    async def wait(generation: asyncio.Event, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(generation.wait(), seconds)
