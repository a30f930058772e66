"""stdio MCP servers end to end: deployed on a real engine, served by DTMA's bridge over
Streamable HTTP to the official SDK's client, probed through it, shared, crashed, scaled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from service.app import create_app
from service.docker.adapter import DockerAdapter
from service.health import probes
from service.settings import Settings
from tests.acceptance.conftest import sweep
from tests.acceptance.test_orchestration import containers_of, send, status_of
from tests.conftest import AUTH, TOKEN
from tests.support.docker_cli import container_log
from tests.support.mcp_clients import SdkClient
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

FAST_PROBES = {"healthCheckInterval": 500, "healthCheckTimeout": 3000, "startPeriod": 20_000}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "dtma-tests", "version": "0"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


class Service:
    """The app on a real port (a stdio replica's endpoint is on DTMA's own API), run as
    `dtma serve` runs it: a handler is not cancelled when its client goes away."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self.runner = runner
        self.port = port
        self.client = aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}")

    @classmethod
    async def start(cls, app: web.Application, port: int) -> Service:
        runner = web.AppRunner(app, handler_cancellation=False)  # web.run_app's default
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return cls(runner, port)

    async def stop(self) -> None:
        await self.client.close()
        await self.runner.cleanup()

    def endpoint(self, server_id: str, replica: int) -> str:
        return f"http://127.0.0.1:{self.port}/stdio/{server_id}/{replica}/mcp"


@pytest.fixture
async def started(
    service_settings: Callable[..., Settings],
    docker: DockerAdapter,
    owner_labels: dict[str, str],
) -> AsyncIterator[Callable[[], Any]]:
    """Starts the service on one port, again after a stop, on the same database."""
    port = free_port()
    services: list[Service] = []

    async def start() -> Service:
        services.append(await Service.start(create_app(service_settings(port=port)), port))
        return services[-1]

    try:
        yield start
    finally:
        for service in services:
            await service.stop()  # a second time is nothing
        await sweep(docker, owner_labels)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def stdio_server(image: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "groupId": "stdio",
        "mcpServers": [
            {
                "id": "tools",
                "image": image,
                "transport": "stdio",
                "env": {"MCP_TRANSPORT": "stdio"},
                "replicas": replicas,
                "healthCheck": FAST_PROBES,
            }
        ],
    }


async def until_healthy(service: Service, after: int, replicas: int = 1) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        status = await status_of(service.client, "tools", after)
        return status if status["healthyReplicas"] == replicas else None

    return await wait_until(probe, 90)


async def deployed_healthy(
    started: Callable[[], Any], image: str
) -> tuple[Service, dict[str, Any]]:
    """A started service with the stdio server `tools` deployed, once its replica is healthy."""
    service = await started()
    deployed = await send(service.client, "POST", "/mcp-servers/deploy", stdio_server(image))
    return service, await until_healthy(service, deployed)


async def initialize(http: aiohttp.ClientSession, url: str) -> tuple[int, str | None]:
    async with http.post(url, json=INITIALIZE, headers={**AUTH, **ACCEPT}) as response:
        return response.status, response.headers.get("Mcp-Session-Id")


async def tools_list(http: aiohttp.ClientSession, url: str, session_id: str) -> int:
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": session_id}
    async with http.post(url, json=body, headers=headers) as response:
        return response.status


async def test_a_stdio_server_is_healthy_and_served_by_dtma_in_either_probe_era(
    started: Callable[[], Any], mcp_image: str, http: aiohttp.ClientSession
) -> None:
    service, status = await deployed_healthy(started, mcp_image)

    assert status["endpoints"] == [service.endpoint("tools", 1)]
    async with aiohttp.ClientSession(headers=AUTH) as authorized:
        for era in (None, probes.LEGACY):  # discover first (turned away), or initialize at once
            result = await probes.probe_mcp(authorized, service.endpoint("tools", 1), 10, era)
            assert result.ok and result.era == probes.LEGACY, result
    async with http.post(service.endpoint("tools", 1), json=INITIALIZE) as unauthorized:
        assert unauthorized.status == 401


async def test_two_sdk_clients_interleave_calls_and_each_gets_only_its_own_answers(
    started: Callable[[], Any], mcp_image: str
) -> None:
    service, _ = await deployed_healthy(started, mcp_image)
    url = service.endpoint("tools", 1)

    def calls(who: str, slow: float) -> list[tuple[str, dict[str, Any]]]:
        return [
            ("wait", {"text": f"{who}-slow", "seconds": slow}),
            ("echo", {"text": f"{who}-1"}),
            ("wait", {"text": f"{who}-mid", "seconds": slow / 3}),
            ("echo", {"text": f"{who}-2"}),
        ]

    # Both send their slow call first and the others while it is pending: the SDK numbers
    # each client's requests from the same start, so every id is in use by both at once.
    a, b = await asyncio.gather(
        SdkClient.start(url, TOKEN, calls("a", 1.5)), SdkClient.start(url, TOKEN, calls("b", 1.2))
    )
    try:
        answers_a, answers_b = await asyncio.gather(a.results(), b.results())
    finally:
        a.kill()
        b.kill()

    assert [answer.get("text") for answer in answers_a] == ["a-slow", "a-1", "a-mid", "a-2"]
    assert [answer.get("text") for answer in answers_b] == ["b-slow", "b-1", "b-mid", "b-2"]


async def test_progress_reaches_only_the_client_whose_call_it_is(
    started: Callable[[], Any], mcp_image: str
) -> None:
    service, _ = await deployed_healthy(started, mcp_image)
    url = service.endpoint("tools", 1)

    # The SDK's progress token is its request id: both clients use the same tokens at once.
    a, b = await asyncio.gather(
        SdkClient.start(url, TOKEN, [("count", {"text": "a", "to": 3, "pause": 0.3})]),
        SdkClient.start(url, TOKEN, [("count", {"text": "b", "to": 4, "pause": 0.2})]),
    )
    try:
        [answer_a], [answer_b] = await asyncio.gather(a.results(), b.results())
    finally:
        a.kill()
        b.kill()

    assert answer_a == {"text": "a", "progress": [1, 2, 3]}
    assert answer_b == {"text": "b", "progress": [1, 2, 3, 4]}


async def test_a_call_pending_when_the_container_dies_fails_at_once_and_its_session_is_lost(
    started: Callable[[], Any],
    mcp_image: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    http: aiohttp.ClientSession,
) -> None:
    service, _ = await deployed_healthy(started, mcp_image)
    url = service.endpoint("tools", 1)
    _, old_session = await initialize(http, url)
    assert old_session is not None
    [container] = await containers_of(docker, owner_labels, "tools")
    client = await SdkClient.start(url, TOKEN, [("wait", {"text": "never", "seconds": 120})])
    try:
        await client.initialized()

        async def call_arrived() -> bool:
            return "called wait: never" in (await container_log(container.id))[1]

        await wait_until(call_arrived, within=30)
        await docker.kill_container(container.id)
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        [answer] = await client.results(within=30)
        answered_after = loop.time() - killed_at
    finally:
        client.kill()

    assert "error" in answer and "container stopped" in answer["error"], answer
    assert answered_after < 10
    assert await tools_list(http, url, old_session) == 404

    async def replaced() -> str | None:  # the reconciler starts a new container, a new bridge
        found = await containers_of(docker, owner_labels, "tools")
        running = [c for c in found if c.running and c.id != container.id]
        code, session = await initialize(http, url) if running else (0, None)
        return session if code == 200 else None

    new_session = await wait_until(replaced, within=90)
    assert new_session != old_session
    assert await tools_list(http, url, new_session) == 200
    assert await tools_list(http, url, old_session) == 404


async def test_scaled_to_two_each_replica_has_its_own_bridge(
    started: Callable[[], Any], mcp_image: str, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    service, _ = await deployed_healthy(started, mcp_image)

    scaled = await send(
        service.client, "PUT", "/mcp-servers/scale", {"mcpServerId": "tools", "replicas": 2}
    )
    status = await until_healthy(service, scaled, replicas=2)

    assert sorted(status["endpoints"]) == [service.endpoint("tools", r) for r in (1, 2)]
    for replica in (1, 2):
        text = f"replica {replica}"
        client = await SdkClient.start(
            service.endpoint("tools", replica), TOKEN, [("echo", {"text": text})]
        )
        assert await client.results() == [{"text": text, "progress": []}]
    for container in await containers_of(docker, owner_labels, "tools"):
        replica = container.labels["dtma.replica"]
        assert f"called echo: replica {replica}" in (await container_log(container.id))[1]


async def test_after_a_restart_of_dtma_its_running_stdio_replica_is_attached_again(
    started: Callable[[], Any],
    mcp_image: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    http: aiohttp.ClientSession,
) -> None:
    first = await started()
    deployed = await send(first.client, "POST", "/mcp-servers/deploy", stdio_server(mcp_image))
    await until_healthy(first, deployed)
    [before] = await containers_of(docker, owner_labels, "tools")
    await first.stop()

    second = await started()

    async def serving() -> str | None:
        code, session = await initialize(http, second.endpoint("tools", 1))
        return session if code == 200 else None

    session = await wait_until(serving, within=60, retrying_on=(aiohttp.ClientError,))
    assert await tools_list(http, second.endpoint("tools", 1), session) == 200
    [after] = await containers_of(docker, owner_labels, "tools")
    assert after.id == before.id  # the same container, adopted and attached again


async def test_a_cancelled_call_and_a_closed_sessions_call_are_answered_at_once(
    started: Callable[[], Any],
    mcp_image: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    http: aiohttp.ClientSession,
) -> None:
    service, _ = await deployed_healthy(started, mcp_image)
    url = service.endpoint("tools", 1)
    _, session_id = await initialize(http, url)
    assert session_id is not None
    headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": session_id}

    async def slow_call(request_id: int) -> dict[str, Any]:
        arguments = {"text": "slow", "seconds": 60}
        body = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": "wait", "arguments": arguments},
        }
        async with http.post(url, json=body, headers=headers) as response:
            answer: dict[str, Any] = await response.json()
            return answer

    [container] = await containers_of(docker, owner_labels, "tools")
    cancelled = asyncio.create_task(slow_call(10))
    closed = asyncio.create_task(slow_call(11))

    async def both_working() -> bool:
        return (await container_log(container.id))[1].count("called wait: slow") == 2

    await wait_until(both_working, within=30)
    cancel = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 10, "reason": "no longer needed"},
    }
    await wait_until(lambda: _posted(http, url, cancel, headers), within=10)
    answer = await asyncio.wait_for(cancelled, 10)
    assert not closed.done()
    async with http.delete(url, headers=headers) as deleted:
        assert deleted.status == 200
    other = await asyncio.wait_for(closed, 10)

    assert answer["id"] == 10 and answer["error"]["code"] == -32800
    assert other["id"] == 11 and other["error"]["code"] == -32800
    assert await tools_list(http, url, session_id) == 404


async def _posted(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> bool:
    async with http.post(url, json=body, headers=headers) as response:
        return response.status == 202


async def test_a_server_to_client_request_is_refused_by_the_bridge(
    started: Callable[[], Any], mcp_image: str
) -> None:
    service, _ = await deployed_healthy(started, mcp_image)

    client = await SdkClient.start(
        service.endpoint("tools", 1), TOKEN, [("roots", {"text": "which roots?"})]
    )
    [answer] = await client.results()

    assert answer["text"].startswith("refused:"), answer
    assert "does not pass server-to-client requests on" in answer["text"]


async def test_a_call_whose_client_went_away_is_cancelled_on_the_server(
    started: Callable[[], Any],
    mcp_image: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    http: aiohttp.ClientSession,
) -> None:
    service, _ = await deployed_healthy(started, mcp_image)
    url = service.endpoint("tools", 1)
    _, session_id = await initialize(http, url)
    assert session_id is not None
    [container] = await containers_of(docker, owner_labels, "tools")
    body = {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "tools/call",
        "params": {"name": "wait", "arguments": {"text": "abandoned", "seconds": 60}},
    }
    headers = {**AUTH, **ACCEPT, "Mcp-Session-Id": session_id}

    async with aiohttp.ClientSession() as leaving:  # its connection closes with it
        posted = asyncio.create_task(leaving.post(url, json=body, headers=headers))

        async def working() -> bool:
            return "called wait: abandoned" in (await container_log(container.id))[1]

        await wait_until(working, within=30)
        posted.cancel()
        await asyncio.gather(posted, return_exceptions=True)

    async def cancelled() -> bool:
        return "cancelled wait: abandoned" in (await container_log(container.id))[1]

    await wait_until(cancelled, within=15)
    assert await tools_list(http, url, session_id) == 200  # the session itself lives on
