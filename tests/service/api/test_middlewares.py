"""The middlewares on every route: bearer-token authentication, and the one error middleware
(the contract's error shape for unknown routes, wrong methods and refused bodies, never
echoing what was sent; and, on an app of its own, what it makes of each kind of error)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from eventstore import errors as store_errors
from projections import runner
from service import errors
from service.api import middlewares
from tests.conftest import AUTH, TOKEN
from tests.support.api import BREAKER, Client, error_of

AUTHENTICATED_ROUTES = [
    ("GET", "/events"),
    ("GET", "/events/stream"),
    ("GET", "/audit/verify"),
    ("POST", BREAKER),
    ("GET", "/health/mcp/search"),
]
SECRET = "s3cr3t-value"


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ],
    ids=["missing", "wrong", "longer", "no-scheme", "basic"],
)
async def test_refuses_every_authenticated_route_without_the_right_token_with_401(
    client: Client, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await client.request(method, path, json={"failureThreshold": 4}, headers=headers)

    error = await error_of(response, 401)
    assert error["code"] == "unauthorized"
    assert TOKEN not in await response.text()


async def test_refuses_an_authorization_header_that_is_not_utf8_with_401(client: Client) -> None:
    assert client.server.host is not None and client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(
            b"GET /events HTTP/1.1\r\nHost: dtma\r\nAuthorization: Bearer \xff\xfe\r\n"
            b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()

    assert answer.startswith(b"HTTP/1.1 401 "), answer
    assert b'"unauthorized"' in answer


async def test_refuses_a_request_to_an_unknown_route_without_a_token_with_401(
    client: Client,
) -> None:
    response = await client.get("/no-such-route")

    await error_of(response, 401)


async def test_a_valid_token_is_accepted(client: Client) -> None:
    response = await client.get("/events", headers=AUTH)

    assert response.status == 200


@pytest.mark.parametrize(
    "path", ["/no-such-route", "/events/nope", "/health/mcp", "/mcp-servers/x"]
)
async def test_answers_an_unknown_route_with_404(client: Client, path: str) -> None:
    response = await client.get(path, headers=AUTH)

    error = await error_of(response, 404)
    assert error["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/events"),
        ("POST", "/events"),
        ("DELETE", "/audit/verify"),
        ("GET", BREAKER),
        ("DELETE", "/health/mcp/search"),
        ("POST", "/healthz"),
    ],
)
async def test_answers_a_wrong_method_with_405(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path, headers=AUTH)

    error = await error_of(response, 405)
    assert error["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "body",
    [
        {"failureThreshold": SECRET},
        {"openTimeout": SECRET},
        {"mcpServerId": SECRET.upper()},
        {"apiKey": SECRET},
        {"nested": {"token": SECRET}},
    ],
)
async def test_never_echoes_submitted_values_in_an_error(
    client: Client, body: dict[str, Any]
) -> None:
    response = await client.post(BREAKER, json=body, headers=AUTH)

    await error_of(response, 422)
    assert SECRET not in (await response.text()).lower()


async def test_never_echoes_a_malformed_body_in_an_error(client: Client) -> None:
    response = await client.post(BREAKER, data=f'{{"apiKey": {SECRET}'.encode(), headers=AUTH)

    await error_of(response, 400)
    assert SECRET not in await response.text()


# -- the error middleware on an app of its own -------------------------------------------------

LEAKY = "password=hunter2"  # what a foreign exception's text may hold


class SealedVersionConflictError(store_errors.VersionConflictError):
    """A subclass the middleware has no entry for: found along its MRO."""


def raising(exc: BaseException) -> Callable[[web.Request], Any]:
    async def handler(_request: web.Request) -> web.Response:
        raise exc

    return handler


@pytest.fixture
async def bare(aiohttp_client: Callable[..., Any]) -> Client:
    """An app with only the error middleware, whose routes raise what the service might."""
    app = web.Application(middlewares=[middlewares.error_middleware])
    raised: dict[str, BaseException] = {
        "/bug": RuntimeError(f"cannot connect: {LEAKY}"),
        "/conflict": store_errors.VersionConflictError("group-g", 1, 3),
        "/sealed-conflict": SealedVersionConflictError("group-g", None, 2),
        "/idempotency": store_errors.IdempotencyConflictError("key-1"),
        "/unavailable": store_errors.StoreUnavailableError(f"refused: {LEAKY}"),
        "/rejected": store_errors.EventRejectedError("not valid Unicode", "data.name"),
        "/behind": runner.ProjectionsBehindError(5, 9, None),
        "/refused": errors.ConflictError("already there", details=[{"id": "g"}]),
    }
    for path, exc in raised.items():
        app.router.add_get(path, raising(exc))
    app.router.add_get("/only-get", raising(errors.NotFoundError("nothing")))
    made: Client = await aiohttp_client(app)
    return made


async def test_an_unexpected_error_answers_500_with_a_fixed_message_and_logs_a_traceback(
    bare: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=middlewares.__name__):
        response = await bare.get("/bug")

    error = await error_of(response, 500)
    assert (error["code"], error["message"]) == ("internal_error", "internal error")
    assert LEAKY not in await response.text()
    [logged] = [r for r in caplog.records if r.name == middlewares.__name__]
    assert logged.exc_info is not None and logged.exc_info[0] is RuntimeError
    assert "GET /bug" in logged.getMessage()


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/conflict", 409, "version_conflict"),
        ("/sealed-conflict", 409, "version_conflict"),
        ("/idempotency", 409, "idempotency_key_reused"),
        ("/unavailable", 503, "store_unavailable"),
        ("/rejected", 422, "validation_failed"),
        ("/behind", 503, "projections_behind"),
        ("/refused", 409, "conflict"),
    ],
)
async def test_translates_each_kind_of_error_into_its_status_and_code_without_its_text(
    bare: Client, path: str, status: int, code: str
) -> None:
    response = await bare.get(path)

    error = await error_of(response, status)
    assert error["code"] == code
    assert LEAKY not in await response.text()


async def test_keeps_the_details_that_say_what_went_wrong(bare: Client) -> None:
    conflict = await error_of(await bare.get("/conflict"), 409)
    rejected = await error_of(await bare.get("/rejected"), 422)
    refused = await error_of(await bare.get("/refused"), 409)

    assert conflict["details"] == [{"streamId": "group-g", "expected": 1, "actual": 3}]
    assert rejected["details"] == [{"field": "data.name", "message": "not valid Unicode"}]
    assert (refused["message"], refused["details"]) == ("already there", [{"id": "g"}])


async def test_a_wrong_method_answers_405_saying_which_methods_the_route_has(
    bare: Client,
) -> None:
    response = await bare.post("/only-get")

    error = await error_of(response, 405)
    assert error["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD"}
