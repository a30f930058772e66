"""Folding events straight into a projection's state, as the runner would (no store)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel

from projections import events
from projections.folds import Projection

S = TypeVar("S", bound=BaseModel)


def fold_facts(
    projection: Projection[S], facts: Iterable[tuple[str, events.Event]], recorded_at: str
) -> S:
    """`facts` are (stream, event), at positions 1, 2, ... and each stream's next version."""
    state = projection.initial()
    versions: dict[str, int] = {}
    for position, (stream, event) in enumerate(facts, start=1):
        versions[stream] = versions.get(stream, 0) + 1
        envelope = events.Envelope(position, stream, versions[stream], recorded_at)
        state = projection.apply(state, event, envelope)
    return state
