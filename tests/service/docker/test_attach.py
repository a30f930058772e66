"""Attaching to a stdio MCP server's container on the real engine: JSON-RPC lines in and out,
standard error kept out of them (it stays in the container's log)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator

import pytest

from service.docker.adapter import ContainerSpec, DockerAdapter
from tests.support.docker import run_labels
from tests.support.docker_cli import container_log
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

STARTUP_S = 30
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "dtma-tests", "version": "0"},
    },
}


@pytest.fixture
async def stdio_container(docker: DockerAdapter, mcp_image: str) -> AsyncIterator[str]:
    spec = ContainerSpec(
        name=f"dtma-test-stdio-{secrets.token_hex(4)}",
        image=mcp_image,
        labels=run_labels(),
        env={"MCP_TRANSPORT": "stdio"},
        open_stdin=True,
    )
    container_id = await docker.create_container(spec)
    try:
        await docker.start_container(container_id)
        yield container_id
    finally:
        await docker.remove_container(container_id)


async def test_attach_carries_json_rpc_lines_and_leaves_stderr_in_the_log(
    docker: DockerAdapter, stdio_container: str
) -> None:
    attachment = await docker.attach_stdio(stdio_container)
    try:
        await attachment.send(json.dumps(INITIALIZE).encode())
        call = {
            "jsonrpc": "2.0",
            "id": 8,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "to stderr too"}},
        }
        lines = attachment.lines()
        first = json.loads(await anext(lines))
        await attachment.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        await attachment.send(json.dumps(call).encode())
        second = json.loads(await anext(lines))
    finally:
        await attachment.close()

    assert first["id"] == 7 and first["result"]["serverInfo"]["name"] == "dtma-test-mcp"
    assert second["id"] == 8 and second["result"]["content"][0]["text"] == "to stderr too"

    async def logged() -> tuple[str, str] | None:
        out, err = await container_log(stdio_container)
        return (out, err) if "called echo: to stderr too" in err else None

    out, err = await wait_until(logged, within=STARTUP_S)
    assert "config at start" in err  # what the server says on stderr went to the log...
    assert "config at start" not in out  # ...as stderr, and into none of the lines above
    assert all(line.startswith("{") for line in out.splitlines())


async def test_a_detach_leaves_the_server_running_for_the_next_attach(
    docker: DockerAdapter, stdio_container: str
) -> None:
    first = await docker.attach_stdio(stdio_container)
    await first.close()

    second = await docker.attach_stdio(stdio_container)
    try:
        await second.send(json.dumps(INITIALIZE).encode())
        answer = json.loads(await anext(second.lines()))
    finally:
        await second.close()

    assert answer["id"] == 7
    assert (await docker.inspect_container(stdio_container)).running
