"""Command handlers of the legacy single-tool routes. They answer as the original did: once
Docker has run (or refused) the tool, not as soon as the command is recorded.

A tool that fails to start when it is created is removed again, so the backend may retry it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from projections import containers, events, groups
from projections import runner as projections_runner
from service import errors
from service.handling import appending, commands, context, handlers
from service.legacy import decisions as decide
from service.registries import pulls

T = TypeVar("T")
OUTCOME_S = 60.0  # how long a command waits for Docker to act on it
Outcome = events.ContainerStarted | events.ContainerFailedToStart


class ToolFailedError(errors.ServiceError):
    """Docker refused to create or start the tool's container; the message says why."""

    status = 502
    code = "tool_failed"


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool as the read models see it: its server and its replica's container, if any."""

    name: str
    server: groups.ServerState
    instance: containers.Instance | None
    status: str


def find(runner: projections_runner.ProjectionRunner, name: str) -> Tool | None:
    server = decide.find_tool(runner.state(groups.PROJECTION), name)
    return None if server is None else _tool(runner, name, server)


def every_tool(runner: projections_runner.ProjectionRunner) -> list[Tool]:
    return [
        _tool(runner, server.spec.legacy.instance_name, server)
        for server in decide.tool_servers(runner.state(groups.PROJECTION))
        if server.spec.legacy is not None
    ]


def _tool(
    runner: projections_runner.ProjectionRunner, name: str, server: groups.ServerState
) -> Tool:
    instances = runner.state(containers.PROJECTION).of(server.spec.id)
    status = decide.tool_status(server, instances)
    return Tool(name, server, instances[0] if instances else None, status)


async def create_tool(
    ctx: context.CommandContext,
    puller: pulls.ImagePuller,
    command: decide.CreateTool,
    meta: context.CommandMeta,
) -> Tool:
    """Declare the tool and wait until its container has started. Its image is pulled first
    if this host lacks it: one that cannot be had is a 404 before anything is recorded, and
    one Docker cannot run (no command) a 422."""
    name = command.instance_name_on_toolbox
    position = await _replayed(ctx, meta)
    if position is None:
        create = functools.partial(decide.create_tool, policy=ctx.policy)
        create(await caught_up(ctx), command)  # a name or port in use, or no room: 409 first
        image, _pulled = await puller.ensure(command.docker_image_url, "IfNotPresent")
        refuse_commandless(command.docker_image_url, image)
        answer = await handlers.decide_on_groups(ctx, command, meta, create, _none)
        position = int(answer["position"])
    try:
        return await _started(ctx, name, decide.tool_id(name), position)
    except (ToolFailedError, errors.TimedOutError):
        undo = replace(meta, idempotency_key=None, request_hash=None)
        with suppress(errors.NotFoundError):  # removed meanwhile
            await remove_tool(ctx, decide.RemoveTool(name=name), undo)
        raise


def refuse_commandless(reference: str, image: dict[str, Any]) -> None:
    """Docker cannot make a container of an image without a command: say so as a 422."""
    config = image.get("Config") or {}
    if not config.get("Cmd") and not config.get("Entrypoint"):
        raise errors.ValidationFailedError(
            f"cannot create a container from image {reference}: it specifies no command",
            details=[{"field": "dockerImageUrl", "message": "the image has no command"}],
        )


async def scale_tool(
    ctx: context.CommandContext, command: decide.ScaleTool, meta: context.CommandMeta
) -> Tool:
    """Start (replicas 1) or stop (0) the tool and wait until Docker has; a tool that is as
    asked already appends nothing."""
    tool = decide.known_tool(await caught_up(ctx), command.name)
    position = ctx.runner.position
    if tool.replicas != command.replicas:
        scale = functools.partial(decide.scale_tool, policy=ctx.policy)
        answer = await handlers.decide_on_groups(ctx, command, meta, scale, _none)
        position = int(answer["position"])
    elif command.replicas and (running := current(ctx.runner, command.name)).status == "running":
        return running
    if command.replicas:
        return await _started(ctx, command.name, tool.spec.id, position)
    return await _outcome(ctx.runner, lambda: _stopped(ctx.runner, command.name))


async def remove_tool(
    ctx: context.CommandContext, command: decide.RemoveTool, meta: context.CommandMeta
) -> None:
    """Recorded at once (and folded, so the next read has it); the reconciler removes the
    container right after."""
    position = await _replayed(ctx, meta)
    if position is None:
        answer = await handlers.decide_on_groups(ctx, command, meta, decide.remove_tool, _none)
        position = int(answer["position"])
    await ctx.runner.wait_for(position)


def command_handlers(
    puller: pulls.ImagePuller,
) -> dict[type[commands.Command], context.Handler]:
    """The legacy commands' table; creating a tool has its image pulled first if need be."""

    async def create(
        ctx: context.CommandContext, command: decide.CreateTool, meta: context.CommandMeta
    ) -> Tool:
        return await create_tool(ctx, puller, command, meta)

    return {decide.CreateTool: create, decide.ScaleTool: scale_tool, decide.RemoveTool: remove_tool}


async def caught_up(ctx: context.CommandContext) -> groups.GroupsState:
    await ctx.runner.current()
    return ctx.runner.state(groups.PROJECTION)


async def _replayed(ctx: context.CommandContext, meta: context.CommandMeta) -> int | None:
    """The position a repeated Idempotency-Key's command reached: it is not run again."""
    replayed = await appending.replay_if_known(ctx, meta)
    return None if replayed is None else int(replayed["position"])


def _none(_produced: list[events.Event]) -> dict[str, Any]:
    return {}


async def _started(ctx: context.CommandContext, name: str, server_id: str, after: int) -> Tool:
    """The tool once the reconciler has started its replica (after position `after`)."""
    cursor = after

    async def outcome() -> Outcome | None:
        nonlocal cursor
        for recorded in await ctx.store.read_all(cursor, stream_id=containers.stream_of(server_id)):
            cursor = recorded.position
            event = ctx.catalogue.decode(recorded)
            if isinstance(event, Outcome):
                await ctx.runner.wait_for(recorded.position)
                return event
        return None

    if isinstance(found := await _outcome(ctx.runner, outcome), events.ContainerFailedToStart):
        raise ToolFailedError(f"Tool '{name}' failed to start: {found.reason}")
    return current(ctx.runner, name)


async def _stopped(runner: projections_runner.ProjectionRunner, name: str) -> Tool | None:
    tool = current(runner, name)
    return tool if tool.status == "stopped" else None


def current(runner: projections_runner.ProjectionRunner, name: str) -> Tool:
    tool = find(runner, name)
    if tool is None:
        raise errors.NotFoundError(f"Tool instance '{name}' not found or not managed by this DTMA.")
    return tool


async def _outcome(
    runner: projections_runner.ProjectionRunner, check: Callable[[], Awaitable[T | None]]
) -> T:
    """`check()` once it is not None, checked again after each new event, for up to 60 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OUTCOME_S
    while (found := await check()) is None:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise errors.TimedOutError(f"Docker did not act on the tool within {OUTCOME_S:g} s")
        await runner.wait_for(runner.position + 1, remaining)
    return found
