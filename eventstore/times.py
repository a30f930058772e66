"""The log's times as text: UTC, microseconds, fixed width, as the store stamps `recorded_at`.
Read them back with `parse_time` and compare datetimes, never the text."""

from __future__ import annotations

from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime) -> str:
    """`moment` (with its zone) in the log's format: UTC, microseconds, fixed width, so that
    the text sorts in the same order as the times."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def format_epoch(epoch: float) -> str:
    return format_time(datetime.fromtimestamp(epoch, tz=UTC))


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with its zone (`Z` or an offset; the log's format among them), in UTC.

    Raises:
        ValueError: if `text` is not such a time, or names no zone.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"no time zone in {text!r}")
    return moment.astimezone(UTC)
