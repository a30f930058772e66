"""OAuth token requests and refresh timing, against a stand-in token endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from service.credentials import values
from service.credentials.oauth import TokenRequestError, due, request_token, token_form
from service.outbound import OutboundPolicy

ISSUED = "2026-01-01T00:00:00.000000Z"
LOCAL = OutboundPolicy(("127.0.0.1",))  # the stand-in endpoints listen on loopback


@pytest.mark.parametrize(
    ("expires_at", "now_offset", "is_due"),
    [
        (None, 10_000.0, False),  # a token without expiry is never refreshed
        ("2026-01-01T00:00:04.000000Z", 1.0, False),  # 3 s of 4 left
        ("2026-01-01T00:00:04.000000Z", 2.0, True),  # half its life left
        ("2026-01-01T01:00:00.000000Z", 3000.0, False),  # 10 min of an hour left
        ("2026-01-01T01:00:00.000000Z", 3541.0, True),  # under a minute left
        ("2026-01-01T00:00:04.000000Z", 9.0, True),  # already expired
    ],
)
def test_due(expires_at: str | None, now_offset: float, is_due: bool) -> None:
    start = 1767225600.0  # 2026-01-01T00:00:00Z
    assert due(expires_at, ISSUED, start + now_offset) is is_due


def grant(refresh: bytes | None = b"rt") -> values.PlainGrant:
    return values.PlainGrant("gh", "cid", ("repo",), "http://x/token", b"cs", refresh)


def test_the_form_uses_the_refresh_token_or_client_credentials() -> None:
    assert token_form(grant()) == {
        "client_id": "cid",
        "client_secret": "cs",
        "grant_type": "refresh_token",
        "refresh_token": "rt",
        "scope": "repo",
    }
    assert token_form(grant(None))["grant_type"] == "client_credentials"
    assert "rt" not in repr(grant()) and "cs" not in repr(grant())


async def endpoint(aiohttp_server: Callable[..., Any], status: int, body: Any) -> values.PlainGrant:
    async def token(_request: web.Request) -> web.Response:
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    return values.PlainGrant("gh", "cid", (), str(server.make_url("/token")), b"cs", b"rt")


async def test_a_token_and_its_rotated_refresh_token(aiohttp_server: Callable[..., Any]) -> None:
    answer = {"access_token": "at", "expires_in": 3600, "refresh_token": "rt2"}
    target = await endpoint(aiohttp_server, 200, answer)
    async with aiohttp.ClientSession() as session:
        assert await request_token(session, target, LOCAL) == (b"at", 3600.0, b"rt2")


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "secret rt"},
            "HTTP 400: invalid_grant",
        ),
        (401, {"error": "Not A Code!"}, "HTTP 401"),
        (500, "internal secret", "HTTP 500"),
        (200, {"token": "x"}, "HTTP 200"),
    ],
)
async def test_failures_name_the_status_and_oauth_error_code_only(
    aiohttp_server: Callable[..., Any], status: int, body: Any, message: str
) -> None:
    target = await endpoint(aiohttp_server, status, body)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TokenRequestError) as raised:
            await request_token(session, target, LOCAL)
    assert str(raised.value) == f"token endpoint answered {message}"


async def test_an_unreachable_endpoint_is_a_token_request_error(unused_tcp_port: int) -> None:
    target = values.PlainGrant("gh", "c", (), f"http://127.0.0.1:{unused_tcp_port}/t", b"s")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TokenRequestError, match="unreachable"):
            await request_token(session, target, LOCAL)


async def test_a_loopback_endpoint_is_never_asked_unless_allowed(
    aiohttp_server: Callable[..., Any],
) -> None:
    """Else the log's failure reasons would say what answers on the service's own ports."""
    asked: list[str] = []

    async def metrics(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(text="dtma_up 1")

    app = web.Application()
    app.router.add_post("/metrics", metrics)
    server = await aiohttp_server(app)
    target = values.PlainGrant("gh", "c", (), str(server.make_url("/metrics")), b"s")

    async with aiohttp.ClientSession() as session:
        with pytest.raises(TokenRequestError) as raised:
            await request_token(session, target, OutboundPolicy())
        assert asked == []
        assert "refused" in str(raised.value) and "HTTP" not in str(raised.value)
        with pytest.raises(TokenRequestError, match="HTTP 200"):
            await request_token(session, target, LOCAL)
    assert asked == ["/metrics"]


async def test_a_redirect_is_not_followed(aiohttp_server: Callable[..., Any]) -> None:
    asked: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        asked.append(request.path)
        if request.path == "/token":
            raise web.HTTPTemporaryRedirect("/elsewhere")
        return web.json_response({"access_token": "at"})

    app = web.Application()
    app.router.add_post("/token", moved)
    app.router.add_post("/elsewhere", moved)
    server = await aiohttp_server(app)
    target = values.PlainGrant("gh", "c", (), str(server.make_url("/token")), b"s")

    async with aiohttp.ClientSession() as session:
        with pytest.raises(TokenRequestError, match="HTTP 307"):
            await request_token(session, target, LOCAL)
    assert asked == ["/token"]
