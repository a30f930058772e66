"""Route descriptions: each API module declares its routes as `Route`s, which `register` adds to
the app's router and to its route table, the source of the OpenAPI document.

Knows no route module; the answers' shapes are pydantic models (service/api/schemas.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from service.api import schemas
from service.api.wire import MAX_INTEGER
from service.handling import commands

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Param:
    """A query, path or header parameter, with the JSON Schema of its value."""

    name: str
    where: Literal["query", "path", "header"]
    schema: Mapping[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """One status's answer: a JSON body shaped by `model`, or text of `media_type`."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = JSON


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    replies: Mapping[int, Reply]
    body: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    tag: str = ""
    public: bool = False  # needs no bearer token
    role: str | None = None  # the least role a token needs; by default by its method

    @property
    def needs(self) -> str | None:
        """The role a caller needs: none if public, else `role`, else reader for a GET and
        operator for a command."""
        if self.public:
            return None
        return self.role or ("reader" if self.method == "GET" else "operator")


# Every route with its description, as the route modules register them: the OpenAPI document's
# source.
routes_key: web.AppKey[list[Route]] = web.AppKey("dtma.routes")
# (method, path template) -> the role a token needs there, None for a public route.
roles_key: web.AppKey[dict[tuple[str, str], str | None]] = web.AppKey("dtma.roles")


def register(app: web.Application, routes: tuple[Route, ...]) -> None:
    """Add `routes` to the router (a GET answers HEAD too) and to the app's route table."""
    for route in routes:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)
        else:
            app.router.add_route(route.method, route.path, route.handler)
    app.setdefault(routes_key, []).extend(routes)
    roles = app.setdefault(roles_key, {})
    for route in routes:
        roles[(route.method, route.path)] = route.needs


def required_role(request: web.Request) -> str | None:
    """The role `request`'s route needs (a HEAD as its GET); for no route (404, 405) the least,
    so that only a caller with some token learns what is not there; admin for a route added
    to the router but not described."""
    resource = request.match_info.route.resource
    if resource is None:
        return "metrics"
    method = "GET" if request.method == "HEAD" else request.method
    return request.config_dict.get(roles_key, {}).get((method, resource.canonical), "admin")


def table(app: web.Application) -> list[Route]:
    return app.get(routes_key, [])


# -- the parts most routes share -----------------------------------------------------------

ERROR_TEXT = {
    400: "the body is missing or not JSON (`malformed_json`)",
    401: "no valid bearer token (`unauthorized`)",
    403: "the token's role is too small (`forbidden`; the message names the role needed)",
    404: "no such resource (`not_found`)",
    409: "a conflict: a concurrent change, an id in use, an Idempotency-Key reused",
    413: "the body is larger than 1 MiB (`payload_too_large`)",
    422: "the request is not valid (`validation_failed`; `details` names each field)",
    429: "too many event streams open for this token (`too_many_streams`)",
    502: "Docker refused to act",
    503: "the event store or Docker is unreachable",
    504: "not done in time (`timeout`)",
}


def failures(*statuses: int, model: type[BaseModel] = schemas.ErrorAnswer) -> dict[int, Reply]:
    """The contract's error answer for each of `statuses`."""
    return {status: Reply(ERROR_TEXT[status], model) for status in statuses}


def ok(description: str, model: type[BaseModel], status: int = 200) -> dict[int, Reply]:
    return {status: Reply(description, model)}


ID_SCHEMA = {"type": "string", "pattern": commands.ID_PATTERN}
POSITION_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_INTEGER}
MIN_POSITION = Param(
    "minPosition",
    "query",
    POSITION_SCHEMA,
    "wait (up to 5 s, then 504) until the read model has folded this position",
)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    {"type": "string", "minLength": 1, "maxLength": 200},
    "a repeat with the same key and request returns the first answer and appends nothing",
)
REQUEST_ID = Param(
    "X-Request-ID", "header", {"type": "string"}, "becomes the events' correlation id"
)
COMMAND_HEADERS = (IDEMPOTENCY_KEY, REQUEST_ID)


def id_param(description: str, name: str = "id") -> Param:
    return Param(name, "path", ID_SCHEMA, description, required=True)
