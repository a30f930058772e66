"""`/stdio/{serverId}/{replica}/mcp`: a stdio replica served as MCP Streamable HTTP by its bridge
(service/stdio). Each route needs the `operator` role, as any route that acts."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

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


class RpcError(BaseModel):
    code: int
    message: str
    data: Any = None


class RpcAnswer(BaseModel):
    """A JSON-RPC response: the server's, under the client's id, or the bridge's error."""

    model_config = ConfigDict(extra="allow")

    jsonrpc: Literal["2.0"]
    id: int | str | None
    result: dict[str, Any] | None = None
    error: RpcError | None = None


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
LOST = Reply("no such session: closed, or lost with its replica's container", RpcAnswer)
NOT_RPC = Reply("not JSON-RPC, or no Mcp-Session-Id", RpcAnswer)
EMPTY = "text/plain"  # an empty body
ROUTES = (
    Route(
        "POST",
        PATH,
        post,
        "Send an MCP message to a stdio replica (Streamable HTTP, handshake era)",
        {
            200: Reply(
                "its JSON-RPC answer (an event stream for a request with a progressToken)",
                RpcAnswer,
            ),
            202: Reply("a notification or a response: accepted (no body)", media_type=EMPTY),
            400: NOT_RPC,
            404: LOST,
            503: Reply("the replica is not running (Retry-After)", RpcAnswer),
            504: Reply("the server did not answer initialize in time", RpcAnswer),
            **routes.failures(401, 403, 413),
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
            400: NOT_RPC,
            404: LOST,
            409: Reply("the session has a stream open already", RpcAnswer),
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
        "Close a session (its calls still pending are answered with -32800)",
        {
            200: Reply("closed (no body)", media_type=EMPTY),
            400: NOT_RPC,
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
