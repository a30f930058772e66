"""Container group routes: create, read, restart, remove."""

from __future__ import annotations

from aiohttp import web

from service import commands, errors, handlers, status
from service.api.servers import ACCEPTED, path_id
from service.api.wire import command_meta, read_command, wait_min_position
from service.keys import context_key, runner_key


async def create(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.CreateGroup)
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, body))
    return web.json_response(answer, status=201)


async def read(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    group_id = path_id(request)
    models = status.ReadModels.of(runner)
    if group_id not in models.desired.groups:
        raise errors.NotFoundError(f"no container group {group_id!r}")
    view = status.group_view(models, group_id)
    return web.json_response({**view, "position": runner.position})


async def restart(request: web.Request) -> web.Response:
    command = commands.RestartGroup(group_id=path_id(request))
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, b""))
    return web.json_response(answer, status=ACCEPTED)


async def remove(request: web.Request) -> web.Response:
    command = commands.RemoveGroup(group_id=path_id(request))
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, b""))
    return web.json_response(answer, status=ACCEPTED)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/container-groups", create)
    app.router.add_get("/container-groups/{id}", read)
    app.router.add_put("/container-groups/{id}/restart", restart)
    app.router.add_delete("/container-groups/{id}", remove)
