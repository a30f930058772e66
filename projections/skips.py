"""Events the log itself says to pass over: an operator's `EventSkipped` for an event this
release cannot read. Every fold (live, rebuild, replay) reads the same list from the log, so
all of them pass over the same events and agree."""

from __future__ import annotations

import logging

from eventstore.catalogue import Catalogue
from eventstore.store import EventStore
from projections import events

logger = logging.getLogger(__name__)

STREAM = "log-skips"


async def load(store: EventStore, catalogue: Catalogue) -> dict[int, str]:
    """position -> hash of every event an operator has skipped."""
    skipped: dict[int, str] = {}
    for recorded in await store.read_stream(STREAM):
        event = catalogue.decode(recorded)
        if isinstance(event, events.EventSkipped):
            skipped[event.position] = event.hash
    return skipped
