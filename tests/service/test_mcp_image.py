"""The test MCP server image on the real engine, spoken to over HTTP with aiohttp, not the SDK."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import pytest

from service.docker.adapter import DockerAdapter
from tests.support.docker import run_detached, run_labels
from tests.support.mcp_image import CONTAINER_PORT, ensure_mcp_image
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

SERVER_NAME = "dtma-test-mcp"  # tests/support/mcp_server/server.py
LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
ACCEPT = {"Accept": "application/json, text/event-stream"}
STARTUP_S = 30
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=5)
CLIENT_INFO = {"name": "dtma-tests", "version": "0"}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}

StartServer = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_server(docker: DockerAdapter) -> AsyncIterator[StartServer]:
    """Start the MCP server image with `env` and return its URL; containers go with the test."""
    image = await ensure_mcp_image(docker)
    started: list[str] = []

    async def start(**env: str) -> str:
        container_id, port = await run_detached(
            docker,
            name=f"dtma-test-mcp-{secrets.token_hex(4)}",
            image=image,
            labels=run_labels(),
            env=env,
            container_port=CONTAINER_PORT,
        )
        started.append(container_id)
        return f"http://127.0.0.1:{port}/mcp"

    try:
        yield start
    finally:
        for container_id in started:
            await docker.remove_container(container_id)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        yield session


async def test_serves_mcp_over_streamable_http_to_a_client_without_the_sdk(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    url = await start_server()

    headers, initialized = await wait_until(
        lambda: post(http, url, request(1, "initialize", initialize_params())),
        within=STARTUP_S,
        retrying_on=(aiohttp.ClientError, TimeoutError),
    )
    session = {"Mcp-Session-Id": headers["Mcp-Session-Id"], "Mcp-Protocol-Version": LEGACY_VERSION}
    _, ack = await post(http, url, INITIALIZED, session)
    _, tools = await post(http, url, request(2, "tools/list", {}), session)
    _, echoed = await post(
        http, url, request(3, "tools/call", {"name": "echo", "arguments": {"text": "hi"}}), session
    )
    async with http.delete(url, headers=session) as deleted:
        deleted_status = deleted.status
    gone_status = await status(http, url, request(4, "tools/list", {}), session)

    assert initialized["result"]["serverInfo"]["name"] == SERVER_NAME
    assert initialized["result"]["protocolVersion"] == LEGACY_VERSION
    assert ack == {}
    assert [tool["name"] for tool in tools["result"]["tools"]] == ["echo"]
    assert echoed["result"]["content"] == [{"type": "text", "text": "hi"}]
    assert deleted_status == 200
    assert gone_status == 404


async def test_answers_server_discover_of_the_2026_07_28_revision(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    url = await start_server()
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    routing = {"Mcp-Protocol-Version": MODERN_VERSION, "Mcp-Method": "server/discover"}

    headers, discovered = await wait_until(
        lambda: post(http, url, request(1, "server/discover", {"_meta": meta}), routing),
        within=STARTUP_S,
        retrying_on=(aiohttp.ClientError, TimeoutError),
    )

    assert "Mcp-Session-Id" not in headers
    assert MODERN_VERSION in discovered["result"]["supportedVersions"]
    assert "tools" in discovered["result"]["capabilities"]
    server_info = discovered["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]
    assert server_info["name"] == SERVER_NAME


async def test_answers_401_without_the_token_it_requires(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    token = secrets.token_urlsafe(16)
    url = await start_server(MCP_REQUIRE_TOKEN=token)

    initialize = request(1, "initialize", initialize_params())

    without = await wait_until(
        lambda: status(http, url, initialize, {}),
        within=STARTUP_S,
        retrying_on=(aiohttp.ClientError, TimeoutError),
    )
    wrong = await status(http, url, initialize, {"Authorization": f"Bearer not-{token}"})
    right = await status(http, url, initialize, {"Authorization": f"Bearer {token}"})

    assert (without, wrong, right) == (401, 401, 200)


def request(request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def initialize_params() -> dict[str, Any]:
    return {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}


async def status(
    http: aiohttp.ClientSession, url: str, message: dict[str, Any], headers: Mapping[str, str]
) -> int:
    async with http.post(url, json=message, headers={**ACCEPT, **headers}) as response:
        return response.status


async def post(
    http: aiohttp.ClientSession,
    url: str,
    message: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> tuple[Mapping[str, str], dict[str, Any]]:
    """POST one JSON-RPC message; answer the response headers and the JSON-RPC reply to it.

    The reply may come as JSON or as Server-Sent Events; a notification's 202 has no reply: {}.
    """
    async with http.post(url, json=message, headers={**ACCEPT, **(headers or {})}) as response:
        assert response.status in (200, 202), f"{response.status}: {await response.text()}"
        if response.status == 202:
            return response.headers, {}
        if response.content_type == "text/event-stream":
            replies = sse_data(await response.text())
        else:
            replies = [await response.json()]
    return response.headers, next(reply for reply in replies if reply.get("id") == message["id"])


def sse_data(stream: str) -> list[dict[str, Any]]:
    """The JSON `data` of each event in a Server-Sent Events stream."""
    events = []
    for event in re.split(r"\r?\n\r?\n", stream):
        data = [
            line.removeprefix("data:").removeprefix(" ")
            for line in event.splitlines()
            if line.startswith("data:")
        ]
        if data:
            events.append(json.loads("\n".join(data)))
    return events
