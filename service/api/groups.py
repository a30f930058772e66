"""Container group routes: create, read, restart, remove."""

from __future__ import annotations

from aiohttp import web

from service import errors, status
from service.api import routes, schemas, wire
from service.api.keys import api_url_key, context_key, runner_key
from service.api.routes import Route
from service.api.servers import ACCEPTED
from service.api.wire import command_meta, read_command, wait_min_position
from service.handling import commands, handlers


async def create(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.CreateGroup)
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, body))
    return wire.answer_as(schemas.GroupCreated, answer, status=201)


async def read(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    group_id = wire.path_id(request)
    models = status.ReadModels.of(runner, request.app[api_url_key])
    if group_id not in models.desired.groups:
        raise errors.NotFoundError(f"no container group {group_id!r}")
    return wire.answer(group_read(models, group_id, runner.position))


def group_read(models: status.ReadModels, group_id: str, position: int) -> schemas.GroupRead:
    group = models.desired.groups[group_id]
    servers = [status.server_status(models, s) for s in group.servers]
    limits = group.limits
    return schemas.GroupRead(
        id=group.id,
        name=group.name,
        network=schemas.NetworkView(
            name=models.observed.networks.get(group.id), internal=group.internal
        ),
        resource_limits=None
        if limits is None
        else schemas.LimitsView(memory_mb=limits.memory_mb, cpus=limits.cpus, pids=limits.pids),
        status=status.group_status(servers),
        mcp_servers=servers,
        position=position,
    )


async def restart(request: web.Request) -> web.Response:
    command = commands.RestartGroup(group_id=wire.path_id(request))
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, b""))
    return wire.answer_as(schemas.Accepted, answer, status=ACCEPTED)


async def remove(request: web.Request) -> web.Response:
    command = commands.RemoveGroup(group_id=wire.path_id(request))
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, b""))
    return wire.answer_as(schemas.Accepted, answer, status=ACCEPTED)


GROUP_ID = routes.id_param("the container group's id")
COMMAND_ERRORS = routes.failures(401, 404, 409, 422, 503)

ROUTES = (
    Route(
        "POST",
        "/container-groups",
        create,
        "Create a container group",
        {
            **routes.ok("created", schemas.GroupCreated, 201),
            **routes.failures(400, 401, 409, 413, 422, 503),
        },
        body=commands.CreateGroup,
        params=routes.COMMAND_HEADERS,
        tag="container-groups",
    ),
    Route(
        "GET",
        "/container-groups/{id}",
        read,
        "A group, its network and its servers' statuses",
        {
            **routes.ok("the group", schemas.GroupRead),
            **routes.failures(401, 404, 422, 503, 504),
        },
        params=(GROUP_ID, routes.MIN_POSITION),
        tag="container-groups",
    ),
    Route(
        "PUT",
        "/container-groups/{id}/restart",
        restart,
        "Restart every server of the group, in dependency order",
        {**routes.ok("accepted", schemas.Accepted, ACCEPTED), **COMMAND_ERRORS},
        params=(GROUP_ID, *routes.COMMAND_HEADERS),
        tag="container-groups",
    ),
    Route(
        "DELETE",
        "/container-groups/{id}",
        remove,
        "Remove the group, its servers and its network",
        {**routes.ok("accepted", schemas.Accepted, ACCEPTED), **COMMAND_ERRORS},
        params=(GROUP_ID, *routes.COMMAND_HEADERS),
        tag="container-groups",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
