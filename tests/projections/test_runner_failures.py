"""An event the projections cannot fold stops them before it, visibly, without killing them;
a skip recorded in the log lets every fold (live, rebuild, replay) pass over it alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from eventstore import NewEvent
from eventstore.store import EventStore
from projections import ALL, events, health, skips
from projections.runner import (
    FoldError,
    FoldSet,
    ProjectionRunner,
    ProjectionsBehindError,
    fold_log,
)
from tests.support.databases import open_migrated_store
from tests.support.waiting import wait_until


@pytest.fixture
async def raw_store(sqlite_url: str) -> AsyncIterator[EventStore]:
    """A store that checks no catalogue: it stands for a log written by another release."""
    store = await open_migrated_store(sqlite_url)
    try:
        yield store
    finally:
        await store.close()


def threshold(server: str, value: int) -> NewEvent:
    configured = events.CircuitBreakerConfigured(mcp_server_id=server, failure_threshold=value)
    return events.CATALOGUE.to_new_event(configured)


UNREADABLE = {
    "refused by its model": NewEvent("CircuitBreakerConfigured", {"failure_threshold": "many"}),
    "of an unknown type": NewEvent("SomethingFromTheFuture", {"x": 1}),
    "of a newer schema": NewEvent("CircuitBreakerConfigured", {}, schema_version=2),
}


async def append(store: EventStore, *new: NewEvent) -> None:
    for event in new:
        await store.append("breaker-alpha", [event], expected_version=None)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async def holds() -> bool | None:
        return condition() or None

    await wait_until(holds, within, interval=0.02)


async def skip(store: EventStore, position: int) -> None:
    [recorded] = await store.read_all(position - 1, 1)
    skipped = events.EventSkipped(
        position=position, event_type=recorded.type, hash=recorded.hash, reason="a test"
    )
    await store.append(skips.STREAM, [events.CATALOGUE.to_new_event(skipped)], None)


def failure_threshold(folded: ProjectionRunner | FoldSet) -> int | None:
    """alpha's breaker threshold as the folds have it."""
    alpha = folded.state(health.PROJECTION).breaker_servers.get("alpha")
    return alpha.failure_threshold if alpha else None


@pytest.mark.parametrize("unreadable", UNREADABLE.values(), ids=list(UNREADABLE))
async def test_a_start_on_a_log_with_an_unreadable_event_serves_the_state_before_it(
    raw_store: EventStore, unreadable: NewEvent
) -> None:
    await append(raw_store, threshold("alpha", 3), unreadable, threshold("alpha", 7))
    runner = ProjectionRunner(raw_store, events.CATALOGUE, ALL)
    await runner.start()
    try:
        assert runner.position == 1 and failure_threshold(runner) == 3
        assert runner.failure is not None
        assert (runner.failure.position, runner.failure.event_type) == (2, unreadable.type)
        with pytest.raises(ProjectionsBehindError) as caught:
            await runner.current(within=0.1)
        assert caught.value.failure == runner.failure and caught.value.head == 3

        await skip(raw_store, 2)
        await until(lambda: runner.position == 4)
        assert runner.failure is None and failure_threshold(runner) == 7
        assert await runner.current(within=1.0) == 4
    finally:
        await runner.stop()


async def test_an_unreadable_event_appended_live_stops_the_runner_which_stays_alive(
    raw_store: EventStore,
) -> None:
    runner = ProjectionRunner(raw_store, events.CATALOGUE, ALL)
    observed: list[int] = []
    runner.failure_observers.append(lambda failure: observed.append(failure.position))
    await runner.start()
    try:
        await append(raw_store, threshold("alpha", 3))
        await until(lambda: runner.position == 1)
        await append(raw_store, UNREADABLE["of an unknown type"], threshold("alpha", 9))
        await until(lambda: runner.failure is not None)
        assert runner.position == 1 and failure_threshold(runner) == 3
        # it retries the event every second, and says so once
        await append(raw_store, threshold("alpha", 11))
        await until(lambda: len(observed) == 1)
        assert observed == [2]
        await skip(raw_store, 2)
        await until(lambda: runner.position == 5)
        assert failure_threshold(runner) == 11 and observed == [2]
    finally:
        await runner.stop()


async def test_a_skip_names_the_event_by_hash_and_every_fold_passes_over_it_alike(
    raw_store: EventStore,
) -> None:
    await append(raw_store, threshold("alpha", 3), UNREADABLE["refused by its model"])
    with pytest.raises(FoldError) as caught:
        await fold_log(raw_store, FoldSet(events.CATALOGUE, ALL))
    assert caught.value.failure.position == 2
    assert "failure_threshold" in caught.value.failure.error

    wrong = events.EventSkipped(position=2, event_type="x", hash="f" * 64, reason="wrong hash")
    await raw_store.append(skips.STREAM, [events.CATALOGUE.to_new_event(wrong)], None)
    with pytest.raises(FoldError):
        await fold_log(raw_store, FoldSet(events.CATALOGUE, ALL))

    await skip(raw_store, 2)
    await append(raw_store, threshold("alpha", 5))
    replayed = await fold_log(raw_store, FoldSet(events.CATALOGUE, ALL))
    rebuilt = ProjectionRunner(raw_store, events.CATALOGUE, ALL)
    await rebuilt.rebuild()
    assert replayed.position == rebuilt.position == 5
    assert replayed.states == rebuilt.folds.states
    assert failure_threshold(replayed) == 5


async def test_a_rebuild_that_meets_an_unreadable_event_keeps_the_last_snapshot(
    raw_store: EventStore,
) -> None:
    await append(raw_store, threshold("alpha", 3))
    runner = ProjectionRunner(raw_store, events.CATALOGUE, ALL, snapshot_every=1)
    await runner.start()
    await runner.stop()
    assert await raw_store.get_checkpoint("projections") == 1
    await append(raw_store, UNREADABLE["of a newer schema"])
    with pytest.raises(FoldError) as caught:
        await ProjectionRunner(raw_store, events.CATALOGUE, ALL).rebuild()
    assert "schema version 2" in caught.value.failure.error
    assert await raw_store.get_checkpoint("projections") == 1
