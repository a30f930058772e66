"""The bridge on a real stdio MCP server's container: one handshake for every client, sessions
kept within bounds, and a lost container failing what is pending."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from service.docker.adapter import ContainerSpec, DockerAdapter
from service.stdio import bridge, messages
from service.stdio.bridge import StdioBridge
from tests.support.docker import run_labels
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

TIMEOUT_S = 30


@pytest.fixture
async def attached(docker: DockerAdapter, mcp_image: str) -> AsyncIterator[StdioBridge]:
    spec = ContainerSpec(
        name=f"dtma-test-bridge-{secrets.token_hex(4)}",
        image=mcp_image,
        labels=run_labels(),
        env={"MCP_TRANSPORT": "stdio"},
        open_stdin=True,
    )
    container_id = await docker.create_container(spec)
    try:
        await docker.start_container(container_id)
        made = StdioBridge(await docker.attach_stdio(container_id))
        task = asyncio.create_task(made.run())
        try:
            yield made
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await docker.remove_container(container_id)


def asked(version: str) -> dict[str, object]:
    return {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t"}}


async def test_the_server_is_initialized_once_and_later_clients_get_that_answer(
    attached: StdioBridge,
) -> None:
    first = await attached.initialize(asked("2025-06-18"), TIMEOUT_S)
    later = await attached.initialize(asked("2025-11-25"), TIMEOUT_S)

    assert first["result"]["protocolVersion"] == "2025-06-18"
    assert later == first


async def test_past_the_cap_the_oldest_idle_session_is_forgotten(attached: StdioBridge) -> None:
    await attached.initialize(asked("2025-11-25"), TIMEOUT_S)
    opened = [attached.open_session() for _ in range(bridge.MAX_SESSIONS)]

    newest = attached.open_session()

    assert attached.session(opened[0]) is None
    assert attached.session(opened[1]) is not None and attached.session(newest) is not None


async def test_a_lost_container_fails_pending_calls_and_refuses_new_ones(
    docker: DockerAdapter, attached: StdioBridge
) -> None:
    await attached.initialize(asked("2025-11-25"), TIMEOUT_S)
    session = attached.open_session()
    arguments = {"text": "x", "seconds": 60}
    request = messages.request(3, "tools/call", {"name": "wait", "arguments": arguments})
    call = await attached.start(session, request)

    await docker.kill_container(attached.container_id)
    answers = [message async for message in call.messages()]

    assert answers == [messages.error(3, messages.CONNECTION_CLOSED, bridge.LOST)]
    await wait_until(lambda: _lost(attached), within=TIMEOUT_S)
    assert attached.session(session) is None
    with pytest.raises(bridge.SessionLostError):
        await attached.start(session, request)


async def _lost(attached: StdioBridge) -> bool:
    return attached.lost.is_set()
