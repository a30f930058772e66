"""The middlewares on every route: bearer-token authentication, and the one error middleware
(the contract's error shape for unknown routes, wrong methods and refused bodies, never
echoing what was sent)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

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
