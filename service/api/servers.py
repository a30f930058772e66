"""MCP server routes: deploy, scale, remove, status."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from service import errors, status
from service.api import deploy_guard, routes, schemas, wire
from service.api.keys import api_url_key, context_key, puller_key, runner_key, statuses_key
from service.api.routes import Param, Route
from service.api.wire import command_meta, query_int, read_command, wait_min_position
from service.handling import commands, handlers

ACCEPTED = 202
DEFAULT_WAIT_MS = 60_000
MAX_WAIT_MS = 600_000


async def deploy(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.DeployGroup)
    wait_ms = wait_requested(request)
    await deploy_guard.require_admin_to_change_code(request, command)
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, body))
    if wait_ms is None:
        return wire.answer_as(schemas.DeployAccepted, answer, status=ACCEPTED)
    ids = [s.id for s in command.mcp_servers]
    statuses = await until_settled(request, ids, answer["position"], wait_ms)
    done = schemas.DeploySettled(
        group_id=answer["groupId"], mcp_servers=statuses, position=answer["position"]
    )
    return wire.answer(done)


async def scale(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.ScaleServer)
    wait_ms = wait_requested(request)
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, body))
    if wait_ms is None:
        return wire.answer_as(schemas.Accepted, answer, status=ACCEPTED)
    [server] = await until_settled(request, [command.mcp_server_id], answer["position"], wait_ms)
    return wire.answer(schemas.ScaleSettled(position=answer["position"], mcp_server=server))


def wait_requested(request: web.Request) -> int | None:
    """`?wait=true[&timeout=ms]`: the milliseconds to wait, or None for an answer at once."""
    wait = request.query.get("wait", "false")
    if wait not in ("true", "false"):
        raise errors.ValidationFailedError(
            "wait must be true or false", details=[{"field": "wait", "message": "true or false"}]
        )
    timeout = query_int(request, "timeout", DEFAULT_WAIT_MS, low=1, high=MAX_WAIT_MS)
    return timeout if wait == "true" else None


async def until_settled(
    request: web.Request, server_ids: list[str], position: int, wait_ms: int
) -> list[schemas.McpServerStatus]:
    """Statuses once every replica runs; 422 if one failed; 504 with the statuses on timeout."""
    runner = request.app[runner_key]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_ms / 1000
    await runner.wait_for(position, within=wait_ms / 1000)
    while True:
        models = status.ReadModels.of(runner, request.app[api_url_key])
        statuses = [
            status.server_status(models, s) for s in server_ids if s in models.desired.servers
        ]
        caught_up = runner.position >= position and len(statuses) == len(server_ids)
        if caught_up and all(settled(s) for s in statuses):
            return statuses
        if any(s.status == "failed" for s in statuses):
            raise errors.ValidationFailedError(
                "the deployment failed; see each server's instances",
                code="deploy_failed",
                details=[s.wire() for s in statuses],
            )
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise errors.TimedOutError(
                f"not every replica was running and healthy within {wait_ms} ms",
                details=[s.wire() for s in statuses]
                or [{"id": s, "status": "pending"} for s in server_ids],
            )
        await runner.wait_for(runner.position + 1, within=remaining)


def settled(server: schemas.McpServerStatus) -> bool:
    """Every replica runs and passes its probes (or none is wanted)."""
    if server.status == "stopped":
        return True
    return server.status == "running" and server.healthy_replicas >= server.desired_replicas


async def remove(request: web.Request) -> web.Response:
    command = commands.RemoveServer(mcp_server_id=wire.path_id(request))
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, b""))
    return wire.answer_as(schemas.Accepted, answer, status=ACCEPTED)


async def all_statuses(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    position = runner.position

    pulling = request.app[puller_key].progress()

    def render() -> dict[str, Any]:
        models = status.ReadModels.of(runner, request.app[api_url_key], pulling)
        servers = [status.server_status(models, s) for s in sorted(models.desired.servers)]
        return schemas.McpServerList(position=position, mcp_servers=servers).wire()

    # progress changes between positions: only a body without any is shared
    shared = request.app[statuses_key]
    body = json.dumps(render()).encode() if pulling else shared.body(position, render)
    return web.Response(body=body, content_type="application/json")


async def one_status(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    server_id = wire.path_id(request)
    models = status.ReadModels.of(
        runner, request.app[api_url_key], request.app[puller_key].progress()
    )
    if server_id not in models.desired.servers:
        raise errors.NotFoundError(f"no MCP server {server_id!r}")
    found = status.server_status(models, server_id)
    return wire.answer(schemas.McpServerRead(**dict(found), position=runner.position))


WAIT = (
    Param(
        "wait",
        "query",
        {"type": "string", "enum": ["true", "false"]},
        "true: answer once every replica runs and passes its probes",
    ),
    Param(
        "timeout",
        "query",
        {"type": "integer", "minimum": 1, "maximum": MAX_WAIT_MS},
        "with wait=true, milliseconds to wait before 504 (default 60000)",
    ),
)
SERVER_ID = routes.id_param("the MCP server's id")
READ_ERRORS = routes.failures(401, 422, 503, 504)

ROUTES = (
    Route(
        "POST",
        "/mcp-servers/deploy",
        deploy,
        "Deploy a group of MCP servers (the group is created if new)",
        {
            **routes.ok("accepted: the servers' ids", schemas.DeployAccepted, ACCEPTED),
            **routes.ok("wait=true: every server runs and is healthy", schemas.DeploySettled),
            **routes.failures(400, 401, 409, 413, 422, 503, 504),
        },
        body=commands.DeployGroup,
        params=(*WAIT, *routes.COMMAND_HEADERS),
        tag="mcp-servers",
    ),
    Route(
        "PUT",
        "/mcp-servers/scale",
        scale,
        "Set a server's number of replicas (0..20)",
        {
            **routes.ok("accepted", schemas.Accepted, ACCEPTED),
            **routes.ok("wait=true: every replica runs and is healthy", schemas.ScaleSettled),
            **routes.failures(400, 401, 404, 409, 413, 422, 503, 504),
        },
        body=commands.ScaleServer,
        params=(*WAIT, *routes.COMMAND_HEADERS),
        tag="mcp-servers",
    ),
    Route(
        "GET",
        "/mcp-servers/status",
        all_statuses,
        "Every MCP server's status",
        {**routes.ok("the statuses", schemas.McpServerList), **READ_ERRORS},
        params=(routes.MIN_POSITION,),
        tag="mcp-servers",
    ),
    Route(
        "GET",
        "/mcp-servers/{id}",
        one_status,
        "One MCP server's status",
        {**routes.ok("its status", schemas.McpServerRead), **READ_ERRORS, **routes.failures(404)},
        params=(SERVER_ID, routes.MIN_POSITION),
        tag="mcp-servers",
    ),
    Route(
        "DELETE",
        "/mcp-servers/{id}",
        remove,
        "Stop and remove every replica of a server",
        {
            **routes.ok("accepted", schemas.Accepted, ACCEPTED),
            **routes.failures(401, 404, 409, 422, 503),
        },
        params=(SERVER_ID, *routes.COMMAND_HEADERS),
        tag="mcp-servers",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
