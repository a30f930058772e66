"""A guard around aiosqlite connections: a second `stop()` must not leave a closer waiting.

When a query is cancelled, SQLAlchemy terminates the connection: it starts a graceful
`close()` in a shielded task and, as the cancellation arrives, force-closes with `stop()`.
aiosqlite 0.22's `close()` then queues a second stop request behind the first and waits for
it; the worker thread has already ended on the first, so that wait never ends. The task is
left behind, and since it swallows the one cancellation `asyncio.run` gives every task at
shutdown, the process hangs on exit (the service on SIGTERM; a test's event loop teardown).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite


class StopOnceConnection(aiosqlite.Connection):
    """A connection whose worker thread is told to stop at most once."""

    def stop(self) -> asyncio.Future[Any] | None:
        if self._running:
            future: asyncio.Future[Any] | None = super().stop()
            return future
        # Already told: queue nothing more, but let a closer wait for the worker thread to end
        # (a query may still be running), so that it does not call back into a closed loop.
        try:
            return asyncio.ensure_future(asyncio.to_thread(self._thread.join))
        except RuntimeError:  # no running loop: from __del__
            return None

    async def close(self) -> None:
        if not self._running:  # stopped: the worker closes the sqlite3 connection, then ends
            self._connection = None
            await asyncio.to_thread(self._thread.join)
            return
        await super().close()


def guard(dbapi_connection: Any) -> None:
    """Give the aiosqlite connection under SQLAlchemy's adapter the stop-once behaviour."""
    connection = getattr(dbapi_connection, "_connection", None)
    if type(connection) is aiosqlite.Connection:
        connection.__class__ = StopOnceConnection
