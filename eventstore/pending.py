"""Appends waiting for their group commit, and how a batch is taken from the queue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventstore.batch import AppendRequest, Outcome

MAX_BATCH_REQUESTS = 512
MAX_BATCH_EVENTS = 5_000


@dataclass(slots=True)
class Pending:
    request: AppendRequest
    future: asyncio.Future[Outcome]


def take_batch(first: Pending, next_or_none: Callable[[], Pending | None]) -> list[Pending]:
    """`first` and whatever else is queued, up to the batch limits."""
    batch = [first]
    size = len(first.request.events)
    while len(batch) < MAX_BATCH_REQUESTS and size < MAX_BATCH_EVENTS:
        pending = next_or_none()
        if pending is None:
            break
        batch.append(pending)
        size += len(pending.request.events)
    return batch


def settle(batch: Sequence[Pending], outcomes: Sequence[Outcome]) -> None:
    """Hand each caller its outcome (results and refusals alike; callers raise refusals)."""
    for pending, outcome in zip(batch, outcomes, strict=True):
        if not pending.future.done():
            pending.future.set_result(outcome)
