"""The probes against the real MCP server image in Docker, against stand-ins (small aiohttp apps
on the loopback that answer as each test tells them to) and against plain sockets."""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from service.docker.adapter import DockerAdapter
from service.health import probes
from tests.support.docker import run_detached, run_labels
from tests.support.docker_cli import stop_container
from tests.support.mcp_image import CONTAINER_PORT, ensure_mcp_image
from tests.support.waiting import wait_until

STARTUP_S = 30
LOGGED_S = 5  # for a line the server wrote to reach `docker logs`
TIMEOUT_S = 2.0
HANG_TIMEOUT_S = 1.0
SESSION_ID = "stand-in-session-" + secrets.token_hex(4)

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@dataclass(frozen=True)
class Started:
    container_id: str
    url: str

    async def logs_with(self, pattern: str) -> re.Match[str]:
        """Poll the logs until `pattern` is in them."""

        async def found() -> re.Match[str] | None:
            return re.search(pattern, await logs_of(self.container_id))

        return await wait_until(found, within=LOGGED_S)


StartServer = Callable[..., Awaitable[Started]]


async def logs_of(container_id: str) -> str:
    """`docker logs`, both streams: the server writes to its standard error."""
    process = await asyncio.create_subprocess_exec(
        "docker",
        "logs",
        container_id,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return output.decode(errors="replace")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def start_server(
    docker: DockerAdapter, http: aiohttp.ClientSession
) -> AsyncIterator[StartServer]:
    """Start the MCP server image with `env`; wait, unless `ready=False`, until it answers HTTP."""
    image = await ensure_mcp_image(docker)
    started: list[str] = []

    async def start(*, ready: bool = True, **env: str) -> Started:
        container_id, port = await run_detached(
            docker,
            name=f"dtma-test-probe-{secrets.token_hex(4)}",
            image=image,
            labels=run_labels(),
            env=env,
            container_port=CONTAINER_PORT,
        )
        started.append(container_id)
        server = Started(container_id, f"http://127.0.0.1:{port}/mcp")
        if ready:
            await wait_until(
                lambda: answers_http(http, server.url.removesuffix("/mcp")),
                within=STARTUP_S,
                retrying_on=(aiohttp.ClientError, TimeoutError),
            )
        return server

    try:
        yield start
    finally:
        for container_id in started:
            await docker.remove_container(container_id)


async def answers_http(http: aiohttp.ClientSession, url: str) -> bool:
    """Any HTTP status will do: Docker's port proxy accepts before the server listens. Not at
    /mcp, where even a GET opens a session: the logs would no longer tell the probe's apart."""
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)):
        return True


@pytest.mark.docker
async def test_mcp_probe_of_a_current_server_answers_with_the_2026_07_28_era(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server()

    result = await probes.probe_mcp(http, server.url, TIMEOUT_S)

    assert result == probes.ProbeResult(ok=True, era=probes.MODERN)
    assert "Created new transport" not in await logs_of(server.container_id)  # no initialize


@pytest.mark.docker
async def test_mcp_probe_falls_back_to_initialize_and_closes_its_session_on_a_legacy_server(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(MCP_LEGACY_ONLY="1")

    result = await probes.probe_mcp(http, server.url, TIMEOUT_S)

    assert result == probes.ProbeResult(ok=True, era=probes.LEGACY)
    opened = await server.logs_with(r"Created new transport with session ID: (\w+)")
    await server.logs_with(rf"session closed: {opened[1]}")
    assert "refused server/discover" in await logs_of(server.container_id)


@pytest.mark.docker
async def test_mcp_probe_with_the_legacy_era_hint_goes_straight_to_initialize(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server()  # it would answer discover: the hint alone makes it legacy

    result = await probes.probe_mcp(http, server.url, TIMEOUT_S, era=probes.LEGACY)

    assert result == probes.ProbeResult(ok=True, era=probes.LEGACY)
    opened = await server.logs_with(r"Created new transport with session ID: (\w+)")
    await server.logs_with(rf"session closed: {opened[1]}")


@pytest.mark.docker
async def test_mcp_probe_takes_a_401_for_alive_without_naming_an_era(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(MCP_REQUIRE_TOKEN=secrets.token_hex(8))

    result = await probes.probe_mcp(http, server.url, TIMEOUT_S)

    assert result == probes.ProbeResult(ok=True, detail="HTTP 401: credentials required")


@pytest.mark.docker
async def test_mcp_probe_of_a_server_that_never_answers_times_out_on_time(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(ready=False, MCP_HANG="1")
    await server.logs_with("hanging: accepting")

    began = time.monotonic()
    result = await probes.probe_mcp(http, server.url, HANG_TIMEOUT_S)
    elapsed = time.monotonic() - began

    assert result == probes.ProbeResult(
        ok=False, detail="timed out after 1000 ms", era=None, timed_out=True
    )
    assert HANG_TIMEOUT_S * 0.9 <= elapsed < HANG_TIMEOUT_S + 1


@pytest.mark.docker
async def test_mcp_probe_of_a_stopped_server_fails_without_an_era(
    start_server: StartServer, http: aiohttp.ClientSession, docker: DockerAdapter
) -> None:
    server = await start_server()
    before = await probes.probe_mcp(http, server.url, TIMEOUT_S)
    await stop_container(docker, server.container_id, timeout_s=1)

    after = await probes.probe_mcp(http, server.url, TIMEOUT_S)

    assert before.ok
    assert (after.ok, after.era, after.timed_out) == (False, None, False)
    assert after.detail in {"connection refused", "server closed the connection"}


# Stand-ins


@dataclass
class StandIn:
    """An MCP endpoint that answers each method from `answers` (a status and a JSON body, or a
    handler) and records what it was asked; a DELETE answers `delete_status` after `release`."""

    answers: dict[str, Any] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    hold_delete: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "DELETE":
            self.seen.append(f"DELETE {request.headers.get('Mcp-Session-Id')}")
            if self.hold_delete:
                await self.release.wait()
            return web.Response()
        message = await request.json()
        self.seen.append(message["method"])
        answer = self.answers[message["method"]]
        if callable(answer):
            response: web.StreamResponse = await answer(request, self)
            return response
        status, body = answer
        if body is None:
            return web.Response(status=status)
        headers = {"Mcp-Session-Id": SESSION_ID} if message["method"] == "initialize" else {}
        if isinstance(body, str):
            return web.Response(status=status, text=body, content_type="application/json")
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def stand_in(aiohttp_server: ServerFactory) -> AsyncIterator[tuple[StandIn, str]]:
    recorder = StandIn()
    app = web.Application()
    app.router.add_route("*", "/mcp", recorder.handle)
    app.router.add_get("/ok", answer_ok)
    app.router.add_get("/fail", answer_500)
    app.router.add_get("/moved", answer_302)
    server = await aiohttp_server(app)
    try:
        yield recorder, str(server.make_url("/mcp"))
    finally:
        recorder.release.set()  # a held handler ends, so the server closes at once


async def answer_ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def answer_500(_: web.Request) -> web.Response:
    return web.Response(status=500, text="not ok")


async def answer_302(_: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


def result(body: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": body}


def error(code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}


DISCOVERED = result({"supportedVersions": [probes.MODERN], "capabilities": {}})
INITIALIZED = result({"protocolVersion": probes.LEGACY, "capabilities": {}})


@pytest.mark.parametrize(
    "refusal",
    [
        (400, None),
        (404, None),
        (405, None),
        (406, None),
        (200, error(-32601, "Method not found")),
        (400, error(-32600, "Bad Request: Missing session ID")),
        (200, result({"supportedVersions": ["2025-11-25"]})),
    ],
    ids=["400", "404", "405", "406", "method-not-found", "missing-session", "legacy-advertised"],
)
async def test_mcp_probe_falls_back_when_discover_is_turned_away(
    stand_in: tuple[StandIn, str], http: aiohttp.ClientSession, refusal: tuple[int, Any]
) -> None:
    recorder, url = stand_in
    recorder.answers = {"server/discover": refusal, "initialize": (200, INITIALIZED)}

    answered = await probes.probe_mcp(http, url, TIMEOUT_S)

    assert answered == probes.ProbeResult(ok=True, era=probes.LEGACY)
    assert recorder.seen == ["server/discover", "initialize", f"DELETE {SESSION_ID}"]


@pytest.mark.parametrize("status", [500, 503])
async def test_mcp_probe_of_a_server_answering_5xx_fails_without_an_era_or_fallback(
    stand_in: tuple[StandIn, str], http: aiohttp.ClientSession, status: int
) -> None:
    recorder, url = stand_in
    recorder.answers = {"server/discover": (status, None), "initialize": (200, INITIALIZED)}

    answered = await probes.probe_mcp(http, url, TIMEOUT_S)

    assert answered == probes.ProbeResult(ok=False, detail=f"HTTP {status}")
    assert recorder.seen == ["server/discover"]


async def test_mcp_probe_of_a_server_answering_garbage_fails_without_an_era(
    stand_in: tuple[StandIn, str], http: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.answers = {"server/discover": (200, "<html>" + "x" * 5000)}

    answered = await probes.probe_mcp(http, url, TIMEOUT_S)

    assert answered == probes.ProbeResult(ok=False, detail="answer is not JSON")


async def test_mcp_probe_reports_a_failed_initialize_with_the_servers_error(
    stand_in: tuple[StandIn, str], http: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.answers = {
        "server/discover": (404, None),
        "initialize": (200, error(-32603, "boom " * 100)),
    }

    answered = await probes.probe_mcp(http, url, TIMEOUT_S)

    assert not answered.ok and answered.era is None
    assert answered.detail is not None
    assert answered.detail.startswith("JSON-RPC error -32603: boom")
    assert len(answered.detail) <= 200


async def test_mcp_probe_takes_a_403_on_initialize_for_alive(
    stand_in: tuple[StandIn, str], http: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.answers = {"initialize": (403, None)}

    answered = await probes.probe_mcp(http, url, TIMEOUT_S, era=probes.LEGACY)

    assert answered == probes.ProbeResult(ok=True, detail="HTTP 403: credentials required")
    assert recorder.seen == ["initialize"]


async def test_mcp_probe_reads_an_event_stream_only_up_to_its_reply(
    stand_in: tuple[StandIn, str], http: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.answers = {"server/discover": streamed_reply}

    began = time.monotonic()
    answered = await probes.probe_mcp(http, url, TIMEOUT_S)

    assert answered == probes.ProbeResult(ok=True, era=probes.MODERN)
    assert time.monotonic() - began < TIMEOUT_S / 2  # the stream itself never ends


async def streamed_reply(request: web.Request, recorder: StandIn) -> web.StreamResponse:
    """A priming event, a notification and another request's reply, then the reply, split over
    two data lines; then the stream stays open until the test ends."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"id: 0\ndata:\n\n")
    await response.write(b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/x"}\n\n')
    await response.write(b'data: {"jsonrpc":"2.0","id":7,"result":{}}\r\n\r\n')
    await response.write(b'data: {"jsonrpc":"2.0","id":1,\ndata: "result":')
    await response.write(b'{"supportedVersions":["2026-07-28"]}}\n\n')
    await recorder.release.wait()
    return response


async def test_mcp_probe_closes_the_session_within_its_timeout_and_still_succeeds(
    stand_in: tuple[StandIn, str], http: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.answers = {"initialize": (200, INITIALIZED)}
    recorder.hold_delete = True

    began = time.monotonic()
    answered = await probes.probe_mcp(http, url, HANG_TIMEOUT_S, era=probes.LEGACY)
    elapsed = time.monotonic() - began

    assert answered == probes.ProbeResult(ok=True, era=probes.LEGACY)
    assert recorder.seen == ["initialize", f"DELETE {SESSION_ID}"]
    assert HANG_TIMEOUT_S * 0.9 <= elapsed < HANG_TIMEOUT_S + 0.5


async def test_http_probe_passes_on_2xx_and_fails_on_500(
    stand_in: tuple[StandIn, str], http: aiohttp.ClientSession
) -> None:
    _, url = stand_in
    base = url.removesuffix("/mcp")

    passed = await probes.probe_http(http, f"{base}/ok", TIMEOUT_S)
    failed = await probes.probe_http(http, f"{base}/fail", TIMEOUT_S)

    assert passed == probes.ProbeResult(ok=True)
    assert failed == probes.ProbeResult(ok=False, detail="HTTP 500")


async def test_http_probe_does_not_follow_a_redirect(
    stand_in: tuple[StandIn, str], http: aiohttp.ClientSession
) -> None:
    _, url = stand_in

    answered = await probes.probe_http(http, url.removesuffix("/mcp") + "/moved", TIMEOUT_S)

    assert answered == probes.ProbeResult(ok=False, detail="HTTP 302")


async def test_http_probe_of_a_closed_port_fails_as_refused(http: aiohttp.ClientSession) -> None:
    answered = await probes.probe_http(http, f"http://127.0.0.1:{closed_port()}/", TIMEOUT_S)

    assert answered == probes.ProbeResult(ok=False, detail="connection refused")


async def test_tcp_probe_passes_on_a_listening_socket() -> None:
    accepted = asyncio.Event()

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        answered = await probes.probe_tcp("127.0.0.1", port, TIMEOUT_S)
        await asyncio.wait_for(accepted.wait(), TIMEOUT_S)
    finally:
        server.close()
        await server.wait_closed()

    assert answered == probes.ProbeResult(ok=True)


async def test_tcp_probe_of_a_closed_port_fails_as_refused() -> None:
    answered = await probes.probe_tcp("127.0.0.1", closed_port(), TIMEOUT_S)

    assert answered == probes.ProbeResult(ok=False, detail="connection refused")


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then let go."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port: int = probe_socket.getsockname()[1]
    return port
