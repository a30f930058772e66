"""The OpenAPI document: generated from the route descriptions, valid OpenAPI 3.1, covering every
route the app registers, and served at /openapi.json behind the bearer token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from service.api import openapi, routes
from service.app import create_app
from service.settings import Settings
from tests.conftest import AUTH

Client: TypeAlias = TestClient[web.Request, web.Application]


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> web.Application:
    return create_app(make_settings())


@pytest.fixture
def document(app: web.Application) -> dict[str, Any]:
    return openapi.document(routes.table(app), "test")


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route on the router; HEAD is implied by GET."""
    found = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    return {(method, path) for method, path in found if method != "HEAD"}


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }


def test_every_route_the_app_registers_is_documented(
    app: web.Application, document: dict[str, Any]
) -> None:
    assert registered(app) - documented(document) == set()
    assert documented(document) - registered(app) == set()


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_operation_has_a_success_answer_and_a_unique_id(document: dict[str, Any]) -> None:
    operations = [op for ops in document["paths"].values() for op in ops.values()]
    for operation in operations:
        assert any(status.startswith("2") for status in operation["responses"]), operation
    ids = [operation["operationId"] for operation in operations]
    assert len(ids) == len(set(ids))


def test_request_bodies_are_the_command_models_with_camel_case_fields(
    document: dict[str, Any],
) -> None:
    body = document["paths"]["/mcp-servers/deploy"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DeployGroup"
    }
    deploy = document["components"]["schemas"]["DeployGroup"]
    assert {"groupId", "mcpServers"} <= set(deploy["required"])
    assert deploy["additionalProperties"] is False  # unknown fields are refused


def test_only_the_liveness_routes_need_no_bearer_token(document: dict[str, Any]) -> None:
    assert document["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    public = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == []
    }
    assert public == {("GET", "/healthz"), ("GET", "/health")}


def test_refusals_have_the_contracts_error_shape_and_legacy_routes_their_envelope(
    document: dict[str, Any],
) -> None:
    def schema_of(path: str, method: str, status: str) -> Any:
        answer = document["paths"][path][method]["responses"][status]
        return answer["content"]["application/json"]["schema"]["$ref"]

    assert schema_of("/mcp-servers/{id}", "get", "404").endswith("/ErrorAnswer")
    assert schema_of("/tools/{name}", "delete", "404").endswith("/LegacyFailure")


async def test_the_service_serves_its_document_to_a_bearer_of_the_token(client: Client) -> None:
    response = await client.get("/openapi.json", headers=AUTH)
    assert response.status == 200
    assert response.content_type == "application/json"
    served = await response.json()
    assert ("GET", "/openapi.json") in documented(served)
    assert served == openapi.document(routes.table(client.app), served["info"]["version"])


async def test_the_document_needs_the_bearer_token(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 401
