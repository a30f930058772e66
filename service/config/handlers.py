"""Configuration commands (define a template, configure a server, roll back). Handlers decide
on the caught-up read models with `service.config_decisions` and append with the stream's
version and the idempotency key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from projections import config, events, groups
from service.config import decisions
from service.handling import commands
from service.handling.handlers import (
    CommandContext,
    CommandMeta,
    Decided,
    decide_and_append,
    replay_if_known,
)

Decision = Callable[[config.ConfigState, groups.GroupsState], events.Event | None]
Unchanged = Callable[[config.ConfigState], dict[str, Any]]


async def define_template(
    ctx: CommandContext, command: commands.DefineTemplate, meta: CommandMeta
) -> dict[str, Any]:
    """A new template; the same body again answers as the first time and appends nothing."""

    def unchanged(state: config.ConfigState) -> dict[str, Any]:
        return {"id": command.id, "position": state.templates[command.id].position}

    return await _decide_and_append(
        ctx,
        config.template_stream_of(command.id),
        lambda state, _desired: decisions.define_template(state, command),
        unchanged,
        meta,
    )


async def configure_server(
    ctx: CommandContext,
    server_id: str,
    command: commands.ConfigureServer,
    environment: str | None,
    meta: CommandMeta,
) -> dict[str, Any]:
    """The server's next configuration version (none when it would equal the current one)."""
    return await _decide_and_append(
        ctx,
        config.stream_of(server_id),
        lambda state, desired: decisions.configure_server(
            state, desired, server_id, command, environment
        ),
        lambda state: _current_answer(state.of(server_id)),
        meta,
    )


async def rollback_config(
    ctx: CommandContext, server_id: str, command: commands.RollbackConfig, meta: CommandMeta
) -> dict[str, Any]:
    return await _decide_and_append(
        ctx,
        config.stream_of(server_id),
        lambda state, desired: decisions.rollback_config(state, desired, server_id, command),
        lambda state: _current_answer(state.of(server_id)),
        meta,
    )


def _current_answer(server: config.ServerConfig) -> dict[str, Any]:
    active = server.active()
    assert active is not None, "only a configured server can be unchanged"
    return {"version": active.version, "position": active.position}


async def _decide_and_append(
    ctx: CommandContext,
    stream: str,
    decide: Decision,
    unchanged: Unchanged,
    meta: CommandMeta,
) -> dict[str, Any]:
    """Decide on the read models caught up with the log's head; append at the stream's version."""
    replayed = await replay_if_known(ctx, meta)
    if replayed is not None:
        return replayed

    def decided() -> Decided | dict[str, Any]:
        state = ctx.runner.state(config.PROJECTION)
        event = decide(state, ctx.runner.state(groups.PROJECTION))
        if event is None:
            return unchanged(state)
        version = state.stream_versions.get(stream, 0)
        return Decided(stream, [event], version, _answer_of(event))

    return await decide_and_append(ctx, meta, decided)


def _answer_of(event: events.Event) -> dict[str, Any]:
    if isinstance(event, events.ConfigTemplateDefined):
        return {"id": event.template_id}
    assert isinstance(event, events.ServerConfigured)
    return {"version": event.version}
