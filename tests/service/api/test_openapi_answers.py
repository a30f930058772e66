"""The check every API and acceptance test's client makes (tests/support/openapi_answers.py):
a JSON answer that does not fit the OpenAPI document the app serves fails its request."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from service.api import openapi, routes
from service.api.keys import openapi_key
from service.app import create_app
from service.settings import Settings
from tests.support.openapi_answers import AnswerDriftError, check_answer, route_of

LIVENESS = {"status": "ok", "position": 1, "instance": "dtma-1", "loopFailures": {}}


@pytest.fixture
def document(make_settings: Callable[..., Settings]) -> dict[str, Any]:
    return openapi.document(routes.table(create_app(make_settings())), "test")


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_an_answer_that_fits_its_schema_passes(document: dict[str, Any]) -> None:
    check_answer(document, "GET", "/healthz", 200, body(LIVENESS))


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({**LIVENESS, "extra": 1}, "'extra' was unexpected"),
        ({**LIVENESS, "position": "1"}, "at /position"),
        ({"status": "ok", "position": 1}, "'instance' is a required property"),
    ],
)
def test_an_answer_that_drifts_from_its_model_fails(
    document: dict[str, Any], answer: dict[str, Any], problem: str
) -> None:
    with pytest.raises(AnswerDriftError, match=problem):
        check_answer(document, "GET", "/healthz", 200, body(answer))


def test_a_status_the_route_does_not_document_fails(document: dict[str, Any]) -> None:
    with pytest.raises(AnswerDriftError, match="does not document"):
        check_answer(document, "GET", "/healthz", 418, body(LIVENESS))


def test_a_literal_path_is_matched_before_a_template(document: dict[str, Any]) -> None:
    assert route_of(document, "/mcp-servers/status") == "/mcp-servers/status"
    assert route_of(document, "/mcp-servers/a-1") == "/mcp-servers/{id}"
    assert route_of(document, "/mcp-servers/a-1/config") == "/mcp-servers/{id}/config"
    assert route_of(document, "/nowhere") is None


async def test_the_tests_client_fails_a_request_whose_answer_drifts(
    aiohttp_client: Callable[..., Any], document: dict[str, Any]
) -> None:
    """A stand-in app that serves the real document but answers /healthz past its model."""
    answers = iter([LIVENESS, {**LIVENESS, "position": "1"}])

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response(next(answers))

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app[openapi_key] = json.dumps(document).encode()
    client = await aiohttp_client(app)

    assert (await client.get("/healthz")).status == 200
    with pytest.raises(AnswerDriftError, match="at /position"):
        await client.get("/healthz")
