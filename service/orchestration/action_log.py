"""How the reconciler and its replica starter record what they do: one event per action, its
metadata naming the event it acted on (or the log's head it read)."""

from __future__ import annotations

from eventstore import catalogue as eventstore_catalogue
from eventstore import store as eventstore_store
from projections import containers, events
from service.handling import causation


class ActionLog:
    def __init__(
        self, store: eventstore_store.EventStore, catalogue: eventstore_catalogue.Catalogue
    ) -> None:
        self._store = store
        self._catalogue = catalogue
        self._causation = causation.Causation(store, "reconciler")
        self.acted_on = 0  # the log's head the current pass read: the cause where no event is

    async def record(self, server_id: str, event: events.Event, cause: int | None = None) -> None:
        await self.append(containers.stream_of(server_id), event, cause=cause)

    async def record_group(self, group_id: str, event: events.Event) -> None:
        await self.append(f"network-{group_id}", event)

    async def append(
        self,
        stream: str,
        event: events.Event,
        idempotency_key: str | None = None,
        cause: int | None = None,
    ) -> None:
        """`cause`: the position of the desired-state event it acts on; else the head read."""
        metadata = await self._causation.caused_by(cause or self.acted_on)
        await self._store.append(
            stream,
            [self._catalogue.to_new_event(event)],
            None,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )
