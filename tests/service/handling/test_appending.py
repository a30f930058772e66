"""The one decide-and-append path, on a real store (SQLite, then PostgreSQL) and real read
models: commands on one stream go in turn, a conflict from outside is decided again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eventstore.errors import VersionConflictError
from projections import ALL, events, groups, health
from projections.runner import ProjectionRunner
from service.handling import appending, commands, context, handlers
from tests.support.databases import open_migrated_store

CLIENTS = 16


@pytest.fixture
async def ctx(database_url: str) -> AsyncIterator[context.CommandContext]:
    store = await open_migrated_store(database_url, events.CATALOGUE)
    runner = ProjectionRunner(store, events.CATALOGUE, ALL)
    await runner.start()
    try:
        yield context.CommandContext(
            store, events.CATALOGUE, runner, handlers=handlers.COMMAND_HANDLERS
        )
    finally:
        await runner.stop()
        await store.close()


def meta(key: str | None = None) -> context.CommandMeta:
    return context.CommandMeta(
        "test", str(uuid.uuid4()), idempotency_key=key, request_hash="same request"
    )


async def test_concurrent_group_commands_each_decide_on_the_one_before(
    ctx: context.CommandContext,
) -> None:
    await handlers.handle(ctx, commands.CreateGroup(id="g"), meta())
    restarts = [
        handlers.handle(ctx, commands.RestartGroup(group_id="g"), meta()) for _ in range(CLIENTS)
    ]
    answers = await asyncio.gather(*restarts)
    positions = sorted(answer["position"] for answer in answers)
    assert positions == list(range(2, CLIENTS + 2))  # none refused, none lost
    stream = await ctx.store.read_stream(groups.stream_of("g"))
    assert [e.version for e in stream] == list(range(1, CLIENTS + 2))


async def test_concurrent_breaker_settings_merge_over_each_other(
    ctx: context.CommandContext,
) -> None:
    """Decided on the stream's tail, not on what is durable: every answer still holds what
    every command before it set."""

    async def configure(number: int) -> tuple[int, dict[str, Any]]:
        fields = {"failure_threshold" if number % 2 else "recovery_threshold": number}
        command = commands.ConfigureBreaker(**fields)
        return number, await handlers.handle(ctx, command, meta())

    answers = sorted(
        await asyncio.gather(*(configure(n) for n in range(1, CLIENTS + 1))),
        key=lambda pair: pair[1]["position"],
    )
    latest: dict[str, int] = {}
    for number, answer in answers:
        latest["failureThreshold" if number % 2 else "recoveryThreshold"] = number
        assert {name: answer["config"][name] for name in latest} == latest
    stream = await ctx.store.read_stream(health.breaker_stream_of(None))
    assert len(stream) == CLIENTS


async def test_a_breaker_setting_written_by_another_process_is_not_lost(
    ctx: context.CommandContext,
) -> None:
    """The tail this process remembers is stale once another appends: the version check
    refuses the append, and the command decides again on the log."""
    await handlers.handle(ctx, commands.ConfigureBreaker(failure_threshold=5), meta())
    foreign = events.CircuitBreakerConfigured(failure_threshold=5, open_timeout_ms=777)
    stream = health.breaker_stream_of(None)
    await ctx.store.append(stream, [ctx.catalogue.to_new_event(foreign)], expected_version=1)
    answer = await handlers.handle(ctx, commands.ConfigureBreaker(recovery_threshold=9), meta())
    assert answer["config"]["openTimeout"] == 777
    assert answer["config"]["recoveryThreshold"] == 9
    assert [e.version for e in await ctx.store.read_stream(stream)] == [1, 2, 3]


async def test_a_conflict_from_outside_makes_the_command_decide_again(
    ctx: context.CommandContext,
) -> None:
    stream = "group-outside"
    decided_on: list[int] = []

    async def decide() -> appending.Decision:
        version = len(await ctx.store.read_stream(stream))
        decided_on.append(version)
        if len(decided_on) == 2:  # another process appends between this decision and its append
            outside = events.GroupRemoved(group_id="outside")
            await ctx.store.append(stream, [ctx.catalogue.to_new_event(outside)], version)
        event = events.GroupRemoved(group_id="outside")
        return appending.Decided(stream, [event], version, {"at": version})

    answer = await appending.decide_and_append(ctx, meta(), decide)
    assert decided_on == [0, 0, 1, 1]  # first to learn the stream, then under its lock, twice
    assert answer["at"] == 1 and answer["position"] == 2


async def test_a_conflict_from_outside_every_time_is_refused_after_three_attempts(
    ctx: context.CommandContext,
) -> None:
    stream = "group-contended"

    async def decide() -> appending.Decision:
        version = len(await ctx.store.read_stream(stream))
        outside = events.GroupRemoved(group_id="contended")
        await ctx.store.append(stream, [ctx.catalogue.to_new_event(outside)], version)
        return appending.Decided(stream, [outside], version, {})

    with pytest.raises(VersionConflictError):
        await appending.decide_and_append(ctx, meta(), decide, stream)
    assert len(await ctx.store.read_stream(stream)) == appending.ATTEMPTS


async def test_a_repeated_key_gets_its_first_answer_without_deciding(
    ctx: context.CommandContext,
) -> None:
    calls: list[str] = []

    async def decide() -> appending.Decision:
        calls.append("decided")
        event = events.GroupRemoved(group_id="once")
        return appending.Decided("group-once", [event], 0, {"first": True})

    first = await appending.decide_and_append(ctx, meta("k-1"), decide, "group-once")
    again = await appending.decide_and_append(ctx, meta("k-1"), decide, "group-once")
    assert again == first == {"first": True, "position": 1}
    assert calls == ["decided"]


async def test_one_table_refuses_a_command_with_two_handlers() -> None:
    with pytest.raises(ValueError, match="RestartGroup"):
        handlers.one_table(
            handlers.COMMAND_HANDLERS, {commands.RestartGroup: handlers.restart_group}
        )
