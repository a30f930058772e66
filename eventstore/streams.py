"""The writer's cache of stream versions, valid while nobody else appends behind its back."""

from __future__ import annotations

from collections.abc import Iterable

from eventstore.batch import EventRow

MAX_CACHED_STREAMS = 100_000


class StreamVersions:
    """stream id -> current version, as this writer last knew it. The writers clear or update
    it whenever the log's head is not where they left it.

    A batch asks what is `missing`, fills it in with `update`, then `get`s every stream it
    names; the cache is trimmed only in `missing`, so nothing a batch relies on disappears
    before its `get`."""

    def __init__(self, limit: int = MAX_CACHED_STREAMS) -> None:
        self._limit = limit
        self._versions: dict[str, int] = {}

    def missing(self, stream_ids: Iterable[str]) -> list[str]:
        if len(self._versions) > self._limit:
            self._versions.clear()
        return sorted({s for s in stream_ids if s not in self._versions})

    def get(self, stream_ids: Iterable[str]) -> dict[str, int]:
        return {s: self._versions[s] for s in stream_ids}

    def update(self, versions: Iterable[tuple[str, int]]) -> None:
        for stream_id, version in versions:
            self._versions[stream_id] = int(version or 0)

    def record(self, rows: Iterable[EventRow]) -> None:
        self.update((row[1], row[2]) for row in rows)

    def clear(self) -> None:
        self._versions.clear()
