"""Registry routes: store a registry's credentials (the password possibly sealed), list them
(servers and usernames, never passwords) and forget them (their key destroyed)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field, RootModel

from projections import registries as read_model
from service.api import routes, wire
from service.api.credentials import keyed_meta
from service.api.keys import context_key, runner_key
from service.api.routes import Param, Route
from service.api.wire import command_meta, read_command, wait_min_position
from service.handling import answers, handlers
from service.registries import handlers as registries

ACCEPTED = 202


class RegistryStored(answers.Answer):
    server: str = Field(description="the registry, as image references name it")
    position: int


class Registry(answers.Answer):
    server: str
    username: str
    stored_at: str


class Registries(RootModel[list[Registry]]):
    pass


async def store(request: web.Request) -> web.Response:
    command, body = await read_command(request, registries.StoreRegistryCredentials)
    answer = await handlers.handle(
        request.app[context_key], command, await keyed_meta(request, body)
    )
    return wire.answer_as(RegistryStored, answer, status=ACCEPTED)


async def listing(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    found = registries.listing(runner.state(read_model.PROJECTION))
    return wire.answer(
        Registries([Registry(server=s, username=u, stored_at=at) for s, u, at in found])
    )


async def forget(request: web.Request) -> web.Response:
    command = registries.ForgetRegistryCredentials(server=request.match_info["server"])
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, b""))
    return wire.answer_as(RegistryStored, answer, status=ACCEPTED)


SERVER_PARAM = Param(
    "server",
    "path",
    {"type": "string", "pattern": registries.SERVER},
    "the registry's host[:port], as in POST /registries",
    required=True,
)

ROUTES = (
    Route(
        "POST",
        "/registries",
        store,
        "Store the credentials DTMA pulls a registry's images with (the password may be sealed)",
        {
            **routes.ok("accepted: the registry", RegistryStored, ACCEPTED),
            **routes.failures(400, 401, 403, 409, 413, 422, 503),
        },
        body=registries.StoreRegistryCredentials,
        params=routes.COMMAND_HEADERS,
        tag="registries",
        role="admin",
    ),
    Route(
        "GET",
        "/registries",
        listing,
        "The registries DTMA has credentials for: servers and usernames, never passwords",
        {**routes.ok("the registries", Registries), **routes.failures(401, 403, 422, 503, 504)},
        params=(routes.MIN_POSITION,),
        tag="registries",
        role="admin",
    ),
    Route(
        "DELETE",
        "/registries/{server}",
        forget,
        "Forget a registry's credentials: their data key is destroyed",
        {
            **routes.ok("accepted: the registry forgotten", RegistryStored, ACCEPTED),
            **routes.failures(401, 403, 404, 409, 422, 503),
        },
        params=(SERVER_PARAM, *routes.COMMAND_HEADERS),
        tag="registries",
        role="admin",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
