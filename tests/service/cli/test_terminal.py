"""The command line's display for a person: event lines and a fold's progress."""

from __future__ import annotations

import io
import json

from eventstore.records import RecordedEvent
from service.cli import terminal


def recorded(type_name: str, data: dict[str, object]) -> RecordedEvent:
    return RecordedEvent(
        position=42,
        stream_id="server-search",
        version=3,
        type=type_name,
        schema_version=1,
        data_json=json.dumps(data),
        metadata_json=json.dumps({"actor": "probe"}),
        recorded_at="2026-11-27T09:28:58.123456Z",
        hash="0" * 64,
    )


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_plain_line_holds_position_time_stream_type_actor_and_data() -> None:
    line = terminal.event_line(recorded("ContainerDied", {"exit_code": 137}), False, 200)
    assert line == (
        "      42  2026-11-27 09:28:58.123  server-search@3  ContainerDied  probe"
        '  {"exit_code":137}'
    )


def test_long_data_is_cut_to_the_width() -> None:
    line = terminal.event_line(recorded("ServerDeclared", {"spec": "x" * 500}), False, 100)
    assert len(line) == 100 and line.endswith("…")


def test_colour_says_what_went_wrong_and_what_went_well() -> None:
    died = terminal.event_line(recorded("ContainerDied", {}), True, 200)
    opened = terminal.event_line(recorded("CircuitTransitioned", {"to": "open"}), True, 200)
    unhealthy = terminal.event_line(
        recorded("ReplicaHealthChanged", {"health": "unhealthy"}), True, 200
    )
    healthy = terminal.event_line(
        recorded("ReplicaHealthChanged", {"health": "healthy"}), True, 200
    )
    half = terminal.event_line(recorded("CircuitTransitioned", {"to": "half_open"}), True, 200)
    assert all(terminal.RED in line for line in (died, opened, unhealthy))
    assert terminal.GREEN in healthy and terminal.RED not in healthy
    assert terminal.YELLOW in half


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_into_a_log_writes_a_line_every_five_seconds_then_the_total() -> None:
    out, clock = io.StringIO(), Clock()
    progress = terminal.Progress("rebuild", 1000, out, clock)
    for position, now in ((100, 1.0), (500, 5.0), (800, 6.0), (1000, 10.0)):
        clock.now = now
        progress.update(position)
    progress.finish()
    assert out.getvalue().splitlines() == [
        "rebuild: 500 / 1,000 events (50%), 100 events/s, about 5 s left",
        "rebuild: 1,000 / 1,000 events (100%), 100 events/s",
        "rebuild: 1,000 / 1,000 events (100%), 100 events/s, done in 10.0 s",
    ]


def test_progress_at_a_terminal_rewrites_one_line() -> None:
    out, clock = Tty(), Clock()
    progress = terminal.Progress("rebuild", 10, out, clock)
    clock.now = 1.0
    progress.update(5)
    progress.finish()
    assert out.getvalue().count("\n") == 1 and out.getvalue().count("\r\033[K") == 2


def test_progress_of_an_empty_log() -> None:
    out = io.StringIO()
    progress = terminal.Progress("rebuild", 0, out, Clock())
    progress.finish()
    assert out.getvalue() == "rebuild: 0 / 0 events, 0 events/s, done in 0.0 s\n"
