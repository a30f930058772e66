"""A test client that holds every JSON answer it receives to the OpenAPI document the app
serves: the schema of its route, method and status. An answer that drifts from its model, or
a status the route does not document, fails the request that got it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer

from service.api.keys import openapi_key

JSON = "application/json"


class AnswerDriftError(AssertionError):
    """An answer that is not what the OpenAPI document says."""


class OpenApiCheckedClient(TestClient[web.Request, web.Application]):
    """`aiohttp_client`'s client, with every JSON answer checked against /openapi.json."""

    def __init__(self, server: BaseTestServer, **kwargs: Any) -> None:
        self._served = server.app if isinstance(server, TestServer) else None
        self._document: tuple[bytes, dict[str, Any]] = (b"", {})
        super().__init__(server, middlewares=(self._check,), **kwargs)

    async def _check(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        response = await handler(request)
        if self._served is None or response.content_type != JSON or request.method == "HEAD":
            return response
        served = self._served.get(openapi_key)
        if served is not None:  # present once the app has started
            body = await response.read()  # kept: the test reads it again
            check_answer(
                self._parsed(served), request.method, request.url.path, response.status, body
            )
        return response

    def _parsed(self, served: bytes) -> dict[str, Any]:
        if self._document[0] is not served:
            self._document = (served, json.loads(served))
        return self._document[1]


def check_answer(
    document: Mapping[str, Any], method: str, path: str, status: int, body: bytes
) -> None:
    """Raise AnswerDriftError unless `body` fits the document's schema for the answer."""
    template = route_of(document, path)
    if template is None:
        return  # not one of ours (aiohttp's 404 for an unknown path is checked elsewhere)
    operation = document["paths"][template].get(method.lower())
    if operation is None:
        return  # a 405: the route table has no such method
    answer = operation["responses"].get(str(status))
    if answer is None:
        raise AnswerDriftError(f"{method} {template} answered {status}, which it does not document")
    schema = answer["content"].get(JSON, {}).get("schema")
    if schema is None:
        raise AnswerDriftError(f"{method} {template} {status} is documented as no JSON answer")
    root = {**schema, "components": document["components"]}
    try:
        jsonschema.Draft202012Validator(root).validate(json.loads(body))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        raise AnswerDriftError(
            f"{method} {template} {status} does not fit its schema at /{where}: {exc.message}"
        ) from None


def route_of(document: Mapping[str, Any], path: str) -> str | None:
    """The path template that `path` matches, a literal one before one with parameters."""
    found = [t for t in document["paths"] if re.fullmatch(_pattern(t), path)]
    return min(found, key=lambda t: t.count("{"), default=None)


def _pattern(template: str) -> str:
    return "".join(
        "[^/]+" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{[^}]+\})", template)
    )
