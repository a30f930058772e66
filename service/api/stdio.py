"""`/stdio/{serverId}/{replica}/mcp`: a stdio replica served as MCP Streamable HTTP by its bridge
(service/stdio). Each route needs the `operator` role, as any route that acts."""

from __future__ import annotations

from aiohttp import web

from service.api import routes
from service.api.keys import bridges_key
from service.api.routes import Param, Reply, Route
from service.stdio import streamable
from service.stdio.bridge import StdioBridge

PATH = "/stdio/{serverId}/{replica}/mcp"


def _bridge(request: web.Request) -> StdioBridge | None:
    bridges = request.app.get(bridges_key)
    replica = request.match_info["replica"]
    if bridges is None or not (replica.isascii() and replica.isdigit()) or len(replica) > 3:
        return None  # no such replica: like one that is not running
    return bridges.get(request.match_info["serverId"], int(replica))


async def post(request: web.Request) -> web.StreamResponse:
    return await streamable.post(_bridge(request), request)


async def get(request: web.Request) -> web.StreamResponse:
    return await streamable.get(_bridge(request), request)


async def delete(request: web.Request) -> web.StreamResponse:
    return await streamable.delete(_bridge(request), request)


PARAMS = (
    routes.id_param("the stdio MCP server's id", name="serverId"),
    Param("replica", "path", {"type": "integer", "minimum": 1}, "the replica", required=True),
    Param(
        streamable.SESSION_HEADER,
        "header",
        {"type": "string"},
        "the session `initialize` opened; 404 once it is lost (the replica stopped)",
    ),
)
LOST = Reply("no such session: closed, or lost with its replica's container")
ROUTES = (
    Route(
        "POST",
        PATH,
        post,
        "Send an MCP message to a stdio replica (Streamable HTTP, handshake era)",
        {
            200: Reply("its JSON-RPC answer; an event stream for a request with a progressToken"),
            202: Reply("a notification or response, accepted", media_type="text/plain"),
            400: Reply("not JSON-RPC, or no Mcp-Session-Id"),
            404: LOST,
            503: Reply("the replica is not running (Retry-After)"),
            504: Reply("the server did not answer initialize in time"),
            **routes.failures(401, 403),
        },
        params=PARAMS,
        tag="stdio",
        role="operator",
    ),
    Route(
        "GET",
        PATH,
        get,
        "A session's stream of the server's notifications (list changes, log messages)",
        {
            200: Reply("an event stream", media_type="text/event-stream"),
            404: LOST,
            409: Reply("the session has a stream open already"),
            **routes.failures(401, 403),
        },
        params=PARAMS,
        tag="stdio",
        role="operator",
    ),
    Route(
        "DELETE",
        PATH,
        delete,
        "Close a session (its calls still pending are cancelled)",
        {
            200: Reply("closed", media_type="text/plain"),
            404: LOST,
            **routes.failures(401, 403),
        },
        params=PARAMS,
        tag="stdio",
        role="operator",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
