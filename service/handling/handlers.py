"""The groups' and circuit breakers' command handlers, each deciding with `decisions` and
appending through `appending`; `COMMAND_HANDLERS` is their table, which the composition root
merges with the other features' into the context's one table that `handle` dispatches through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from projections import events, groups, health
from service.handling import answers, appending, commands, decisions
from service.handling.context import CommandContext, CommandMeta, Handler, Handlers


async def configure_breaker(
    ctx: CommandContext, command: commands.ConfigureBreaker, meta: CommandMeta
) -> dict[str, Any]:
    """Settings merge over the stream's latest. The decision states the settings it leaves, so
    concurrent commands decide in turn on what the one before will write and their appends
    share a commit (the throughput of concurrent settings). (This relies on one service
    appending to its log, as DTMA is run; a write from elsewhere is still caught by the version
    check of the append it raced.)"""
    stream = health.breaker_stream_of(command.mcp_server_id)

    async def decide() -> appending.Decided:
        version, current = await _breaker_settings(ctx, stream)
        event = decisions.configure_breaker(current, command)
        settings = health.settings_of(event)
        if command.mcp_server_id is None:
            config = health.effective(settings, None)
        else:
            _, default = await _breaker_settings(ctx, health.breaker_stream_of(None))
            config = health.effective(default, settings)
        answer = {"config": breaker_config_answer(command.mcp_server_id, config).wire()}
        return appending.Decided(stream, [event], version, answer, after=settings)

    return await appending.decide_and_append(ctx, meta, decide, stream)


async def _breaker_settings(ctx: CommandContext, stream: str) -> tuple[int, health.BreakerSettings]:
    """The stream's version and latest settings: its tail as this process last submitted it,
    else read from the log (and kept, unless a tail was learnt meanwhile)."""
    known = ctx.streams.tail(stream)
    if known is not None and isinstance(known[1], health.BreakerSettings):
        return known[0], known[1]
    history = await ctx.store.read_stream(stream)
    version = history[-1].version if history else 0
    settings = health.latest_settings(_decoded(ctx, history))
    if ctx.streams.tail(stream) is None:
        ctx.streams.remember(stream, version, settings)
    return version, settings


def breaker_config_answer(
    server_id: str | None, config: health.BreakerConfig
) -> answers.BreakerConfig:
    return answers.BreakerConfig(
        mcp_server_id=server_id,
        failure_threshold=config.failure_threshold,
        recovery_threshold=config.recovery_threshold,
        open_timeout=config.open_timeout_ms,
        circuit_breaker_enabled=config.enabled,
    )


def _decoded(ctx: CommandContext, history: list[Any]) -> list[events.Event]:
    return [cast(events.Event, ctx.catalogue.decode(recorded)) for recorded in history]


GroupDecision = Callable[[groups.GroupsState, Any], "events.Event | list[events.Event]"]


async def decide_on_groups(
    ctx: CommandContext,
    command: commands.Command,
    meta: CommandMeta,
    decide: GroupDecision,
    answer: Callable[[list[events.Event]], dict[str, Any]],
) -> dict[str, Any]:
    """Decide on the current desired state and append to the group's stream with its version."""

    def decided() -> appending.Decided:
        state = ctx.runner.state(groups.PROJECTION)
        made = decide(state, command)
        produced = made if isinstance(made, list) else [made]
        stream = groups.stream_of(_group_id(produced[0]))
        version = state.stream_versions.get(stream, 0)
        return appending.Decided(stream, produced, version, answer(produced))

    return await appending.decide_and_append(ctx, meta, appending.on_read_models(ctx, decided))


def _group_id(event: events.Event) -> str:
    group_id = getattr(event, "group_id", None)
    assert isinstance(group_id, str), f"{type(event).__name__} names no group"
    return group_id


async def deploy_group(
    ctx: CommandContext, command: commands.DeployGroup, meta: CommandMeta
) -> dict[str, Any]:
    def answer(_produced: list[events.Event]) -> dict[str, Any]:
        return {"groupId": command.group_id, "mcpServers": [s.id for s in command.mcp_servers]}

    decide = functools.partial(decisions.deploy_group, policy=ctx.policy)
    return await decide_on_groups(ctx, command, meta, decide, answer)


async def create_group(
    ctx: CommandContext, command: commands.CreateGroup, meta: CommandMeta
) -> dict[str, Any]:
    def answer(produced: list[events.Event]) -> dict[str, Any]:
        declared = produced[0]
        assert isinstance(declared, events.GroupDeclared)
        return {"id": declared.group_id, "name": declared.name, "internal": declared.internal}

    return await decide_on_groups(ctx, command, meta, decisions.create_group, answer)


def _no_answer(_produced: list[events.Event]) -> dict[str, Any]:
    return {}


async def scale_server(
    ctx: CommandContext, command: commands.ScaleServer, meta: CommandMeta
) -> dict[str, Any]:
    decide = functools.partial(decisions.scale_server, policy=ctx.policy)
    return await decide_on_groups(ctx, command, meta, decide, _no_answer)


async def remove_server(
    ctx: CommandContext, command: commands.RemoveServer, meta: CommandMeta
) -> dict[str, Any]:
    return await decide_on_groups(ctx, command, meta, decisions.remove_server, _no_answer)


async def remove_group(
    ctx: CommandContext, command: commands.RemoveGroup, meta: CommandMeta
) -> dict[str, Any]:
    return await decide_on_groups(ctx, command, meta, decisions.remove_group, _no_answer)


async def restart_group(
    ctx: CommandContext, command: commands.RestartGroup, meta: CommandMeta
) -> dict[str, Any]:
    return await decide_on_groups(ctx, command, meta, decisions.restart_group, _no_answer)


COMMAND_HANDLERS: dict[type[commands.Command], Handler] = {
    commands.ConfigureBreaker: configure_breaker,
    commands.DeployGroup: deploy_group,
    commands.CreateGroup: create_group,
    commands.ScaleServer: scale_server,
    commands.RemoveServer: remove_server,
    commands.RemoveGroup: remove_group,
    commands.RestartGroup: restart_group,
}


def one_table(*tables: Handlers) -> dict[type[commands.Command], Handler]:
    """Every feature's table in one: a command in two of them is a wiring mistake."""
    merged: dict[type[commands.Command], Handler] = {}
    for table in tables:
        for command, handler in table.items():
            if command in merged:
                raise ValueError(f"{command.__name__} has two handlers")
            merged[command] = handler
    return merged


async def handle(ctx: CommandContext, command: commands.Command, meta: CommandMeta) -> Any:
    """Run a command through the one table the context was given."""
    return await ctx.handlers[type(command)](ctx, command, meta)
