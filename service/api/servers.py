"""MCP server routes: deploy, scale, remove, status."""

from __future__ import annotations

from aiohttp import web

from projections import containers, groups
from service import commands, errors, handlers, status
from service.api.wire import command_meta, read_command, wait_min_position
from service.keys import context_key, runner_key

ACCEPTED = 202


async def deploy(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.DeployGroup)
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, body))
    return web.json_response(answer, status=ACCEPTED)


async def scale(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.ScaleServer)
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, body))
    return web.json_response(answer, status=ACCEPTED)


async def remove(request: web.Request) -> web.Response:
    command = commands.RemoveServer(mcp_server_id=path_id(request))
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, b""))
    return web.json_response(answer, status=ACCEPTED)


async def all_statuses(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    desired, observed = runner.state(groups.PROJECTION), runner.state(containers.PROJECTION)
    servers = [status.server_status(desired, observed, s) for s in sorted(desired.servers)]
    return web.json_response({"position": runner.position, "mcpServers": servers})


async def one_status(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    server_id = path_id(request)
    desired = runner.state(groups.PROJECTION)
    if server_id not in desired.servers:
        raise errors.NotFoundError(f"no MCP server {server_id!r}")
    observed = runner.state(containers.PROJECTION)
    return web.json_response(
        {**status.server_status(desired, observed, server_id), "position": runner.position}
    )


def path_id(request: web.Request) -> str:
    """The `{id}` of the path, held to the id pattern like any id in a body."""
    value = request.match_info["id"]
    try:
        commands.RemoveGroup(group_id=value)
    except ValueError:
        raise errors.ValidationFailedError(
            "ids match ^[a-z0-9][a-z0-9-]{0,62}$",
            details=[{"field": "id", "message": "must match ^[a-z0-9][a-z0-9-]{0,62}$"}],
        ) from None
    return value


def add_routes(app: web.Application) -> None:
    app.router.add_post("/mcp-servers/deploy", deploy)
    app.router.add_put("/mcp-servers/scale", scale)
    app.router.add_get("/mcp-servers/status", all_statuses)
    app.router.add_get("/mcp-servers/{id}", one_status)
    app.router.add_delete("/mcp-servers/{id}", remove)
