"""The runner on a real SQLite log: live folding == rebuild from zero == snapshot + tail."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore.store import EventStore
from projections import ALL, events, health
from projections.runner import ProjectionRunner
from tests.support.databases import open_migrated_store

server_ids = st.one_of(st.none(), st.sampled_from(["alpha", "beta", "gamma"]))
maybe_int = st.one_of(st.none(), st.integers(min_value=1, max_value=50))
configured = st.builds(
    events.CircuitBreakerConfigured,
    mcp_server_id=server_ids,
    failure_threshold=maybe_int,
    recovery_threshold=maybe_int,
    open_timeout_ms=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    enabled=st.one_of(st.none(), st.booleans()),
)
servers = st.sampled_from(["alpha", "beta", "gamma"])
circuits = st.sampled_from(["closed", "open", "half_open"])
judged = st.builds(
    events.ReplicaHealthChanged,
    server_id=servers,
    replica=st.integers(min_value=1, max_value=3),
    container_id=st.sampled_from(["c1", "c2"]),
    health=st.sampled_from(["healthy", "unhealthy"]),
    timed_out=st.booleans(),
)
transitioned = st.builds(
    events.CircuitTransitioned,
    server_id=servers,
    from_state=circuits,
    to_state=circuits,
    cause=st.text(max_size=20),
    open_timeout_ms=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
)
health_events = st.one_of(configured, judged, transitioned)


async def append_all(store: EventStore, history: list[events.Event]) -> None:
    for event in history:
        if isinstance(event, events.CircuitBreakerConfigured):
            stream = f"breaker-{event.mcp_server_id or 'default'}"
        else:
            stream = f"server-{getattr(event, 'server_id', '')}"
        await store.append(stream, [events.CATALOGUE.to_new_event(event)], expected_version=None)


async def three_ways(history: list[events.Event], split: int) -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        store = await open_migrated_store(f"sqlite:///{Path(directory) / 'log.db'}")
        try:
            live = ProjectionRunner(store, events.CATALOGUE, ALL, snapshot_every=3)
            await live.start()
            await append_all(store, history[:split])
            assert await live.wait_for(split, within=10)
            await live.stop()  # leaves a snapshot at `split`

            resumed = ProjectionRunner(store, events.CATALOGUE, ALL, snapshot_every=3)
            await resumed.start()
            await append_all(store, history[split:])
            assert await resumed.wait_for(len(history), within=10)
            await resumed.stop()

            rebuilt = ProjectionRunner(store, events.CATALOGUE, ALL)
            await rebuilt.rebuild()
            return [r.state(health.PROJECTION).model_dump_json() for r in (resumed, rebuilt)] + [
                pure_fold(history).model_dump_json()
            ]
        finally:
            await store.close()


def pure_fold(history: list[events.Event]) -> health.HealthState:
    state = health.HealthState()
    for position, event in enumerate(history, start=1):
        at = events.Envelope(position, "s", position, "2026-01-01T00:00:00.000000Z")
        state = health.apply(state, event, at)
    return state


def breaker_settings(state_json: str) -> tuple[object, object]:
    state = health.HealthState.model_validate_json(state_json)
    return state.breaker_default, state.breaker_servers


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(health_events, min_size=1, max_size=30), data=st.data())
def test_live_folding_equals_rebuild_from_zero_equals_snapshot_plus_tail(
    history: list[events.Event], data: st.DataObject
) -> None:
    split = data.draw(st.integers(min_value=0, max_value=len(history)))
    resumed, rebuilt, folded = asyncio.run(three_ways(history, split))
    assert resumed == rebuilt
    # The pure fold has other times; the breaker settings carry none and must agree too.
    assert breaker_settings(resumed) == breaker_settings(folded)


async def test_a_snapshot_of_another_fold_version_is_ignored(sqlite_url: str) -> None:
    store = await open_migrated_store(sqlite_url)
    try:
        await append_all(store, [events.CircuitBreakerConfigured(failure_threshold=8)])
        first = ProjectionRunner(store, events.CATALOGUE, ALL, snapshot_every=1)
        await first.start()
        await first.stop()
        async with store.engine.begin() as connection:
            from sqlalchemy import text

            await connection.execute(text("UPDATE snapshots SET fold_version = 99, state = '{}'"))
        again = ProjectionRunner(store, events.CATALOGUE, ALL)
        await again.start()
        await again.stop()
        assert again.state(health.PROJECTION).breaker_config(None).failure_threshold == 8
    finally:
        await store.close()
