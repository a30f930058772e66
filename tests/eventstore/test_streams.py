"""The writers' stream-version cache: trimmed between batches, never under one."""

from __future__ import annotations

from eventstore.streams import StreamVersions

LOG = {"a": 1, "b": 4, "c": 2, "d": 0}  # what the database would answer


def fill(versions: StreamVersions, needed: list[str]) -> dict[str, int]:
    """What a writer does for each batch: read what is missing, then get them all."""
    versions.update((stream, LOG[stream]) for stream in versions.missing(needed))
    return versions.get(needed)


def test_a_batch_over_the_limit_gets_every_stream_it_names() -> None:
    versions = StreamVersions(limit=2)
    versions.record([(1, "a", 1, "T", 1, "{}", "{}", "t", "h")])
    fill(versions, ["b", "c"])  # three cached now: over the limit

    assert fill(versions, ["a", "d"]) == {"a": 1, "d": 0}
    assert fill(versions, ["a", "b", "c", "d"]) == LOG
