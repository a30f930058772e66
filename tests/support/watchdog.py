"""A watchdog for hung tests: after `DTMA_TEST_WATCHDOG_S` seconds (default 300) in one test,
print every asyncio task of that test's event loop with its stack, then every thread's stack,
and interrupt the run (as Ctrl-C would) rather than let CI hang.

A hang in an event loop leaves nothing useful in a thread dump (the loop just waits in
`select`); the task that will not finish is only visible from its coroutine's frames."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import TextIO

import pytest

_loops: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(autouse=True)
async def _watched_loop() -> AsyncIterator[None]:
    """Lets the watchdog list this test's tasks if it hangs."""
    _loops.append(asyncio.get_running_loop())
    yield


def dump_tasks(out: TextIO) -> None:
    for loop in list(_loops):
        try:
            tasks = asyncio.all_tasks(loop)
        except RuntimeError:  # the set changed under us; try once more
            tasks = asyncio.all_tasks(loop)
        print(f"\n=== watchdog: {len(tasks)} task(s) on {loop!r}", file=out)
        for task in tasks:
            print(f"--- {task!r}", file=out)
            task.print_stack(limit=30, file=out)
    for thread_id, frame in sys._current_frames().items():
        print(f"--- thread {thread_id}", file=out)
        traceback.print_stack(frame, limit=15, file=out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    seconds = float(os.environ.get("DTMA_TEST_WATCHDOG_S", "300"))
    timer = threading.Timer(seconds, _report, args=(item, seconds))
    timer.daemon = True
    _loops.clear()
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        _loops.clear()


def _report(item: pytest.Item, seconds: float) -> None:
    """Written past pytest's output capture, which would hold it until the hung test ends."""
    out = io.StringIO()
    print(f"\n=== watchdog: {item.nodeid} still running after {seconds:g} s", file=out)
    dump_tasks(out)
    capture = item.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        sys.stderr.write(out.getvalue())
        sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGINT)
