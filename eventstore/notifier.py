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
        # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that arrives as the
        # event is set, which left a stopping projection runner waiting forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await generation.wait()
