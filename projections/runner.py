"""Feeds the log to the folds: catch up from the last snapshot, then follow live.

The runner's snapshots and its checkpoint are written in one transaction every
`snapshot_every` events; `rebuild()` forgets them and folds the whole log from zero.
An event that cannot be folded (unknown type, newer schema, data its model refuses, a fold
that raises) stops the runner just before it, with `failure` saying why, until the log says
to skip it (projections/skips.py) or a release that reads it is started. It never dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from eventstore.catalogue import Catalogue
from eventstore.errors import StoreError
from eventstore.notifier import Notifier
from eventstore.records import RecordedEvent, Snapshot
from eventstore.store import EventStore
from projections import events, skips
from projections.folds import Projection

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=BaseModel)
CHECKPOINT = "projections"
PAGE = 1_000
CATCH_UP_S = 5.0  # how long a reader waits for the projections to fold what it needs
STALLED_RETRY_S = 1.0  # how often a stopped runner looks for a skip of the event it stopped at


@dataclass(frozen=True, slots=True)
class FoldFailure:
    """The event the projections could not fold, and why (the exception's type and text)."""

    position: int
    event_type: str
    error: str


class FoldError(Exception):
    """An event could not be folded; the states are as they were before it."""

    def __init__(self, failure: FoldFailure) -> None:
        super().__init__(
            f"cannot fold the event at position {failure.position} "
            f"({failure.event_type}): {failure.error}"
        )
        self.failure = failure


class ProjectionsBehindError(StoreError):
    """The projections have not folded the log's head (or cannot: `failure`); whatever would
    decide or act on them now would act on stale state, so it must wait."""

    def __init__(self, position: int, head: int, failure: FoldFailure | None) -> None:
        why = f"stopped: {failure.error}" if failure else "still catching up"
        super().__init__(f"the projections are at {position} of {head} ({why})")
        self.position = position
        self.head = head
        self.failure = failure


class FoldSet:
    """The states of several projections at one position. Pure: no I/O."""

    def __init__(self, catalogue: Catalogue, projections: Sequence[Projection[Any]]) -> None:
        self.catalogue = catalogue
        self.projections = tuple(projections)
        self.position = 0
        self.recorded_at = ""
        self.states: dict[str, BaseModel] = {p.name: p.initial() for p in self.projections}
        self.skipped: dict[int, str] = {}  # position -> hash: events the log says to pass over

    def apply(self, recorded: RecordedEvent) -> None:
        """Fold one event into every state, or into none: FoldError leaves them untouched."""
        if self.skipped.get(recorded.position) != recorded.hash:
            self.states = self._folded(recorded)
        self.position = recorded.position
        self.recorded_at = recorded.recorded_at

    def _folded(self, recorded: RecordedEvent) -> dict[str, BaseModel]:
        envelope = events.Envelope(
            recorded.position, recorded.stream_id, recorded.version, recorded.recorded_at
        )
        try:
            event = cast(events.Event, self.catalogue.decode(recorded))
            return {p.name: p.apply(self.states[p.name], event, envelope) for p in self.projections}
        except Exception as exc:  # noqa: BLE001 - whatever it is, the event stops the folds
            failure = FoldFailure(recorded.position, recorded.type, _describe(exc))
            raise FoldError(failure) from exc

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
    `progress` is told the position after every page. The events the log says to skip are
    passed over; one that cannot be folded raises FoldError, with the states just before it."""
    folds.skipped = await skips.load(store, folds.catalogue)
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
        # why the projections stopped before an event, while they are stopped
        self.failure: FoldFailure | None = None
        self.failure_observers: list[Callable[[FoldFailure], None]] = []

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
        try:
            await fold_log(self._store, self.folds)
        except FoldError as exc:  # start anyway: serve what can be read, say what cannot
            self._stopped_by(exc.failure)
        await self._maybe_snapshot()
        self._task = asyncio.create_task(self._follow(), name="dtma-projections")

    def require_readable(self, head: int | None = None) -> None:
        """Raise ProjectionsBehindError while the projections are stopped before an event."""
        if self.failure is not None:
            raise ProjectionsBehindError(self.position, head or self.failure.position, self.failure)

    async def current(self, within: float = CATCH_UP_S) -> int:
        """The log's head as it is now, once the projections have folded it; raise
        ProjectionsBehindError if they are stopped, or still behind after `within` seconds."""
        head, _ = await self._store.head()
        self.require_readable(head)
        if not await self.wait_for(head, within):
            self.require_readable(head)
            raise ProjectionsBehindError(self.position, head, None)
        return head

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
        folds = FoldSet(self.folds.catalogue, self.folds.projections)
        await fold_log(self._store, folds, progress=progress)  # FoldError: nothing forgotten
        await self._store.forget_checkpoint(CHECKPOINT, names)
        self.folds = folds
        await self._save()

    async def wait_for(self, position: int, within: float = CATCH_UP_S) -> bool:
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
                if self.failure is not None:
                    await asyncio.sleep(STALLED_RETRY_S)
                    self.folds.skipped = await skips.load(self._store, self.folds.catalogue)
                await self._follow_until_stopped()
                delay = 0.1
            except StoreError as exc:
                logger.warning("projections paused at %d: %s", self.folds.position, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _follow_until_stopped(self) -> None:
        """Fold new events as they come, until one cannot be folded."""
        async for recorded in self._store.subscribe(self.folds.position):
            try:
                self.folds.apply(recorded)
            except FoldError as exc:
                self._stopped_by(exc.failure)
                return
            if self.failure is not None:
                logger.warning("projections resumed past position %d", self.failure.position)
                self.failure = None
            self.last_of_type[recorded.type] = recorded.position
            self._advanced.notify()
            await self._maybe_snapshot()

    def _stopped_by(self, failure: FoldFailure) -> None:
        """Logged once per event: a stopped runner retries the same event every second."""
        if failure != self.failure:
            logger.error(
                "projections stopped before position %d (%s): %s; they stay at %d until that "
                "event can be read (a release that reads it, or `dtma skip %d --reason ...`)",
                failure.position,
                failure.event_type,
                failure.error,
                self.folds.position,
                failure.position,
            )
            for observe in self.failure_observers:
                observe(failure)
        self.failure = failure

    async def _maybe_snapshot(self) -> None:
        if self.folds.position - self._saved_at >= self._snapshot_every:
            await self._save()

    async def _save(self) -> None:
        await self._store.save_checkpoint(CHECKPOINT, self.folds.position, self.folds.snapshots())
        self._saved_at = self.folds.position


def _describe(exc: BaseException) -> str:
    """What went wrong, for an operator and for the public /healthz: never event data. The
    store's errors and pydantic's (rendered without their input) say what and where; of
    anything else (a fold's bug), only its type."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "data"
        return f"{type(exc).__name__}: {where}: {first['msg']}"[:300]
    if isinstance(exc, StoreError):
        return f"{type(exc).__name__}: {exc}"[:300]
    return f"{type(exc).__name__} raised by a fold"
