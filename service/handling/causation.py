"""Who did what and why, for the events the service appends on its own.

Every event's metadata names its `actor` (`token:<id>` for an API command; `system`, `docker` or
`probe` otherwise, with the acting `component` beside it), a `correlation_id` (a command's
request id, carried along to everything it caused) and, for whatever no command appended
directly, a `causation_id`: the position of the event that caused it, or the Docker event it
records. Following causation ids from any event leads back to the command behind it.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Literal

from eventstore import errors
from eventstore import store as eventstore_store

Actor = Literal["system", "docker", "probe"]
REMEMBERED = 1024


class Causation:
    """Metadata for one component's events, each carrying its cause's correlation id (read from
    the log once, then remembered)."""

    def __init__(
        self, store: eventstore_store.EventStore, component: str, actor: Actor = "system"
    ) -> None:
        self._store = store
        self._component = component
        self._actor = actor
        self._correlations: OrderedDict[int, str] = OrderedDict()

    async def caused_by(self, position: int, actor: Actor | None = None) -> dict[str, str]:
        """For an event caused by the event at `position`."""
        return self._metadata(await self.correlation_of(position), str(position), actor)

    def observed(self, source: str, actor: Actor | None = None) -> dict[str, str]:
        """For a fact observed outside the log (`source` names it, say a Docker event): a new
        correlation starts here."""
        return self._metadata(str(uuid.uuid4()), source, actor)

    async def correlation_of(self, position: int) -> str:
        """The correlation id of the event at `position` (a new one if it has none)."""
        known = self._correlations.get(position)
        if known is not None:
            self._correlations.move_to_end(position)
            return known
        found = await self._read_correlation(position)
        if found is None:  # the log cannot be read now: the metadata must not hold anything up
            return str(uuid.uuid4())
        self._correlations[position] = found
        while len(self._correlations) > REMEMBERED:
            self._correlations.popitem(last=False)
        return found

    async def _read_correlation(self, position: int) -> str | None:
        """The event's correlation id, a new one if it has none, None if the log is unreadable."""
        try:
            page = await self._store.read_all(position - 1, 1) if position > 0 else []
        except errors.StoreError:
            return None
        if page and page[0].position == position:
            correlation = page[0].metadata.get("correlation_id")
            if isinstance(correlation, str) and correlation:
                return correlation
        return str(uuid.uuid4())

    def _metadata(self, correlation: str, causation: str, actor: Actor | None) -> dict[str, str]:
        return {
            "actor": actor or self._actor,
            "component": self._component,
            "correlation_id": correlation,
            "causation_id": causation,
        }
