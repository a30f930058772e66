"""The log's time format: written as the store writes it, read back in UTC from any zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from eventstore import times

MOMENT = datetime(2026, 12, 1, 10, 0, 0, 5, tzinfo=UTC)


def test_times_are_written_in_utc_with_microseconds() -> None:
    plus_two = MOMENT.astimezone(timezone(timedelta(hours=2)))
    assert times.format_time(plus_two) == times.format_time(MOMENT)
    assert times.format_time(MOMENT) == "2026-12-01T10:00:00.000005Z"
    assert times.format_epoch(MOMENT.timestamp()) == "2026-12-01T10:00:00.000005Z"


@pytest.mark.parametrize(
    "text",
    ["2026-12-01T10:00:00.000005Z", "2026-12-01T12:00:00.000005+02:00"],
)
def test_a_time_in_any_zone_reads_back_in_utc(text: str) -> None:
    parsed = times.parse_time(text)
    assert parsed == MOMENT and parsed.utcoffset() == timedelta(0)


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        times.parse_time("2026-12-01T10:00:00")
