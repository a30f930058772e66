"""What the command line shows a person at a terminal: events one line each, and the progress
of a long fold. Plain text (no colour) when the output is not a terminal or `NO_COLOR` is set."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any, TextIO

from eventstore import records

RESET, DIM, BOLD = "\033[0m", "\033[2m", "\033[1m"
RED, GREEN, YELLOW, CYAN = "\033[31m", "\033[32m", "\033[33m", "\033[36m"
# how a type name ends, or a health or circuit it reports, when something went wrong / well
ALARMING = ("Died", "Failed", "OomKilled", "Revoked"), {"unhealthy", "open"}
REASSURING = ("Started", "Applied", "Injected", "Declared", "Configured"), {"healthy", "closed"}
TTY_EVERY_S = 0.2
LOG_EVERY_S = 5.0


def wants_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def event_line(event: records.RecordedEvent, colour: bool, width: int) -> str:
    """`position  time  stream@version  Type  actor  data`, the data cut to the width left."""
    data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    actor = event.metadata.get("actor", "?")
    head = [
        f"{event.position:>8}",
        event.recorded_at[:23].replace("T", " "),
        f"{event.stream_id}@{event.version}",
        event.type,
        actor,
    ]
    used = sum(len(part) for part in head) + 2 * len(head)
    shown = _cut(data, max(20, width - used))
    if not colour:
        return "  ".join([*head, shown])
    paint = _type_colour(event.type, event.data)
    parts = [
        f"{DIM}{head[0]}  {head[1]}{RESET}",
        f"{CYAN}{head[2]}{RESET}",
        f"{paint}{BOLD}{head[3]}{RESET}",
        f"{DIM}{head[4]}{RESET}",
        shown,
    ]
    return "  ".join(parts)


def _type_colour(type_name: str, data: dict[str, Any]) -> str:
    reported = {str(data.get("health")), str(data.get("to"))}
    for (endings, states), colour in ((ALARMING, RED), (REASSURING, GREEN)):
        if type_name.endswith(endings) or reported & states:
            return colour
    return YELLOW


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def terminal_width(stream: TextIO) -> int:
    return shutil.get_terminal_size((120, 24)).columns if stream.isatty() else 10_000


class Progress:
    """`rebuild: 120,000 / 1,000,000 events (12%), 85,000 events/s, about 10 s left`, rewritten
    in place at a terminal (5 times a second) or a line every 5 s into a log."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.stream, self.clock = label, total, stream, clock
        self.tty = stream.isatty()
        self.started = self.last_shown = clock()
        self.position = 0

    def update(self, position: int) -> None:
        self.position = position
        now = self.clock()
        if now - self.last_shown >= (TTY_EVERY_S if self.tty else LOG_EVERY_S):
            self.last_shown = now
            self._show(self.describe(now), final=False)

    def finish(self) -> None:
        self._show(self.describe(self.clock(), done=True), final=True)

    def describe(self, now: float, done: bool = False) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.position / elapsed
        share = f" ({100 * self.position // self.total}%)" if self.total else ""
        text = f"{self.label}: {self.position:,} / {self.total:,} events{share}"
        text += f", {rate:,.0f} events/s"
        if done:
            return f"{text}, done in {elapsed:.1f} s"
        if rate > 0 and self.total > self.position:
            text += f", about {(self.total - self.position) / rate:.0f} s left"
        return text

    def _show(self, text: str, final: bool) -> None:
        if self.tty:
            end = "\n" if final else ""
            self.stream.write(f"\r\033[K{text}{end}")
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()
