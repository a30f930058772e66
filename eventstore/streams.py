"""The writer's cache of stream versions, valid while nobody else appends behind its back."""

from __future__ import annotations

from collections.abc import Iterable

from eventstore.batch import EventRow

MAX_CACHED_STREAMS = 100_000


class StreamVersions:
    """stream id -> current version, as this writer last knew it. The writers clear or update
    it whenever the log's head is not where they left it."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}

    def missing(self, stream_ids: Iterable[str]) -> list[str]:
        return sorted({s for s in stream_ids if s not in self._versions})

    def get(self, stream_ids: Iterable[str]) -> dict[str, int]:
        return {s: self._versions[s] for s in stream_ids}

    def update(self, versions: Iterable[tuple[str, int]]) -> None:
        if len(self._versions) > MAX_CACHED_STREAMS:
            self._versions.clear()
        for stream_id, version in versions:
            self._versions[stream_id] = int(version or 0)

    def record(self, rows: Iterable[EventRow]) -> None:
        self.update((row[1], row[2]) for row in rows)

    def clear(self) -> None:
        self._versions.clear()
