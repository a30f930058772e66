"""Open event streams per caller: each SSE connection holds a slot of its token's until it ends,
so one token cannot hold the service's connections and memory with endless streams."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from service import errors


class StreamSlots:
    def __init__(self, per_actor: int) -> None:
        self._per_actor = per_actor
        self._open: Counter[str] = Counter()

    @contextmanager
    def held(self, actor: str) -> Iterator[None]:
        """A slot of `actor`'s for the block; 429 when all are taken."""
        if self._open[actor] >= self._per_actor:
            raise errors.TooManyRequestsError(
                f"this token has {self._per_actor} event streams open already"
                " (DTMA_MAX_STREAMS_PER_TOKEN); close one first",
                code="too_many_streams",
            )
        self._open[actor] += 1
        try:
            yield
        finally:
            self._open[actor] -= 1
            if not self._open[actor]:
                del self._open[actor]

    def open(self, actor: str) -> int:
        return self._open[actor]
