"""`GET /openapi.json`: the OpenAPI 3.1 document of every route in the app's route table,
generated from the route descriptions and their pydantic models (nothing written by hand)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from service.api import routes, schemas
from service.api.keys import openapi_key
from service.api.routes import Param, Reply, Route
from service.backend import system_metrics

REF_TEMPLATE = "#/components/schemas/{model}"
BEARER = "bearer"
Refs = Mapping[tuple[Any, JsonSchemaMode], Any]
DESCRIPTION = (
    "DTMA runs MCP servers as Docker containers and keeps every change in an event log. "
    "Every route but GET and HEAD of /healthz and /health needs `Authorization: Bearer <token>` "
    "of a token whose role (`x-dtma-role`) is enough: admin > operator > reader > metrics."
)


def document(table: Iterable[Route], version: str) -> dict[str, Any]:
    """The OpenAPI document of `table`: each route's parameters, body and answers."""
    table = list(table)
    refs, definitions = models_json_schema(models(table), by_alias=True, ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for route in table:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "DTMA", "version": version, "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer"}},
        },
        "security": [{BEARER: []}],
    }


def models(table: Iterable[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Every model the routes name: bodies as validated, answers as serialized."""
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for route in table:
        if route.body is not None:
            found[(route.body, "validation")] = None
        for reply in route.replies.values():
            if reply.model is not None:
                found[(reply.model, "serialization")] = None
    return list(found)


def operation(route: Route, refs: Refs) -> dict[str, Any]:
    handler = route.handler
    found: dict[str, Any] = {
        "operationId": f"{handler.__module__.rsplit('.', 1)[-1]}_{handler.__name__}",
        "summary": route.summary,
        "tags": [route.tag] if route.tag else [],
        "parameters": [parameter(p) for p in route.params],
        "responses": {str(s): reply(r, refs) for s, r in sorted(replies(route).items())},
    }
    if route.body is not None:
        schema = refs[(route.body, "validation")]
        found["requestBody"] = {"required": True, "content": {routes.JSON: {"schema": schema}}}
    if route.public:
        found["security"] = []
    else:
        found["x-dtma-role"] = route.needs
        found["description"] = f"Needs a token of role `{route.needs}` or above."
    return found


def replies(route: Route) -> Mapping[int, Reply]:
    """The route's answers, and a 403 shaped like its 401 for a route that needs a role."""
    unauthorized = route.replies.get(401)
    if route.public or unauthorized is None or 403 in route.replies:
        return route.replies
    return {**route.replies, 403: Reply(routes.ERROR_TEXT[403], unauthorized.model)}


def parameter(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.where,
        "required": param.required,
        "description": param.description,
        "schema": dict(param.schema),
    }


def reply(answer: Reply, refs: Refs) -> dict[str, Any]:
    if answer.model is None:
        schema: Any = {"type": "string"}
    else:
        schema = refs[(answer.model, "serialization")]
    return {"description": answer.description, "content": {answer.media_type: {"schema": schema}}}


async def build(app: web.Application) -> None:
    """At startup, once every module has registered its routes."""
    generated = document(routes.table(app), system_metrics.dtma_version())
    app[openapi_key] = json.dumps(generated).encode()


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[openapi_key], content_type=routes.JSON)


ROUTES = (
    Route(
        "GET",
        "/openapi.json",
        openapi_json,
        "This document: every route, generated from the service's pydantic models",
        {
            **routes.ok("the OpenAPI 3.1 document", schemas.OpenApiDocument),
            **routes.failures(401),
        },
        tag="meta",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
    app.on_startup.append(build)
