"""Feeds the log to the folds: catch up from the last snapshot, then follow live.

The runner's snapshots and its checkpoint are written in one transaction every
`snapshot_every` events; `rebuild()` forgets them and folds the whole log from zero.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from eventstore.catalogue import Catalogue
from eventstore.errors import StoreError
from eventstore.notifier import Notifier
from eventstore.records import RecordedEvent
from eventstore.store import EventStore, Snapshot
from projections import events
from projections.folds import Projection

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=BaseModel)
CHECKPOINT = "projections"
PAGE = 1_000


class FoldSet:
    """The states of several projections at one position. Pure: no I/O."""

    def __init__(self, catalogue: Catalogue, projections: Sequence[Projection[Any]]) -> None:
        self.catalogue = catalogue
        self.projections = tuple(projections)
        self.position = 0
        self.recorded_at = ""
        self.states: dict[str, BaseModel] = {p.name: p.initial() for p in self.projections}

    def apply(self, recorded: RecordedEvent) -> None:
        event = cast(events.Event, self.catalogue.decode(recorded))
        envelope = events.Envelope(
            recorded.position, recorded.stream_id, recorded.version, recorded.recorded_at
        )
        for projection in self.projections:
            self.states[projection.name] = projection.apply(
                self.states[projection.name], event, envelope
            )
        self.position = recorded.position
        self.recorded_at = recorded.recorded_at

    def state(self, projection: Projection[S]) -> S:
        return cast(S, self.states[projection.name])

    def snapshots(self) -> list[Snapshot]:
        return [
            Snapshot(p.name, self.position, p.fold_version, self.states[p.name].model_dump_json())
            for p in self.projections
        ]

    def restore(self, snapshots: Sequence[Snapshot | None]) -> bool:
        """Adopt snapshots if all are there, of the current fold versions, at one position."""
        usable = [
            snap
            for snap, p in zip(snapshots, self.projections, strict=True)
            if snap is not None and snap.fold_version == p.fold_version
        ]
        if len(usable) != len(self.projections) or len({s.position for s in usable}) != 1:
            return False
        for snap, projection in zip(usable, self.projections, strict=True):
            self.states[projection.name] = projection.state_type.model_validate_json(
                snap.state_json
            )
        self.position = usable[0].position
        return True


async def fold_log(
    store: EventStore,
    folds: FoldSet,
    stop: Callable[[RecordedEvent], bool] = lambda _event: False,
    progress: Callable[[int], None] = lambda _position: None,
) -> FoldSet:
    """Fold events after `folds.position` until the head or until `stop(event)` is true;
    `progress` is told the position after every page."""
    while page := await store.read_all(folds.position, PAGE):
        for recorded in page:
            if stop(recorded):
                return folds
            folds.apply(recorded)
        progress(folds.position)
    return folds


class ProjectionRunner:
    """Keeps the projections' states current in memory and answers read-your-writes waits."""

    def __init__(
        self,
        store: EventStore,
        catalogue: Catalogue,
        projections: Sequence[Projection[Any]],
        snapshot_every: int = 1_000,
    ) -> None:
        self._store = store
        self._snapshot_every = snapshot_every
        self.folds = FoldSet(catalogue, projections)
        self._advanced = Notifier()
        # the position of the last event of each type folded while following the log
        self.last_of_type: dict[str, int] = {}
        self._saved_at = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def position(self) -> int:
        return self.folds.position

    def state(self, projection: Projection[S]) -> S:
        return self.folds.state(projection)

    async def start(self) -> None:
        """Restore the last snapshot, catch up to the head, then follow new events."""
        snapshots = [await self._store.load_snapshot(p.name) for p in self.folds.projections]
        if not self.folds.restore(snapshots):
            logger.info("no usable snapshot; folding the log from the start")
        self._saved_at = self.folds.position
        await fold_log(self._store, self.folds)
        await self._maybe_snapshot()
        self._task = asyncio.create_task(self._follow(), name="dtma-projections")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.folds.position > self._saved_at:
            try:
                await self._save()
            except StoreError as exc:  # the next start folds from the older snapshot instead
                logger.warning("could not snapshot at %d on stop: %s", self.folds.position, exc)

    async def rebuild(self, progress: Callable[[int], None] = lambda _position: None) -> None:
        """Forget snapshots and checkpoint, fold the whole log from zero, snapshot the result."""
        names = [p.name for p in self.folds.projections]
        await self._store.forget_checkpoint(CHECKPOINT, names)
        self.folds = FoldSet(self.folds.catalogue, self.folds.projections)
        await fold_log(self._store, self.folds, progress=progress)
        await self._save()

    async def wait_for(self, position: int, within: float) -> bool:
        """True once the projections have folded `position`; False after `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.folds.position < position:
            generation = self._advanced.current()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await self._advanced.wait(generation, remaining)
        return True

    async def _follow(self) -> None:
        delay = 0.1
        while True:
            try:
                async for recorded in self._store.subscribe(self.folds.position):
                    self.folds.apply(recorded)
                    self.last_of_type[recorded.type] = recorded.position
                    self._advanced.notify()
                    await self._maybe_snapshot()
                    delay = 0.1
            except StoreError as exc:
                logger.warning("projections paused at %d: %s", self.folds.position, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _maybe_snapshot(self) -> None:
        if self.folds.position - self._saved_at >= self._snapshot_every:
            await self._save()

    async def _save(self) -> None:
        await self._store.save_checkpoint(CHECKPOINT, self.folds.position, self.folds.snapshots())
        self._saved_at = self.folds.position
