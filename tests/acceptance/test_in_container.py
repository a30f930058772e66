"""DTMA in a container (issue 15, part 3): an image built FROM scratch, run with the Docker
socket mounted, attaches itself to a group's internal network, reaches the replicas at their
addresses there, and detaches before the network goes."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from service.docker.adapter import DockerAdapter
from tests.acceptance.conftest import sweep
from tests.acceptance.test_orchestration import mcp_initialize
from tests.conftest import AUTH, TOKEN
from tests.support.docker import TEST_RUN_ID, TEST_RUN_LABEL
from tests.support.docker_cli import docker_cli, inspect_raw
from tests.support.dtma_image import CONTAINER_PORT, ensure_dtma_image
from tests.support.mcp_image import IMAGE_PYTHON
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

STARTUP_S = 60.0
# From inside DTMA's container: an MCP initialize to each URL given, each answer's version.
INITIALIZE = """\
import json, sys, urllib.request
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "dtma-test", "version": "1"}}}).encode()
for url in sys.argv[1:]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json",
        "Accept": "application/json, text/event-stream"})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    data = next((l[5:] for l in text.splitlines() if l.startswith("data:")), text)
    print(json.loads(data)["result"]["protocolVersion"])
"""


def engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip("DTMA in a container needs the engine's socket to mount")
    return host.removeprefix("unix://")


@pytest.fixture
async def in_container(docker: DockerAdapter, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """DTMA's container and its API's URL; it and all it made are removed afterwards."""
    image = await ensure_dtma_image(docker)
    owner = {TEST_RUN_LABEL: TEST_RUN_ID, "dtma.test-app": secrets.token_hex(4)}
    socket = engine_socket()
    data = tmp_path / "data"
    data.mkdir()
    container_id = (
        await docker_cli(
            *("run", "--detach", "--name", f"dtma-reach-{secrets.token_hex(4)}"),
            *("--label", f"{TEST_RUN_LABEL}={TEST_RUN_ID}"),
            *("--volume", f"{socket}:/var/run/docker.sock", "--volume", f"{data}:/data"),
            *("--env", f"DTMA_AUTH_TOKEN={TOKEN}", "--env", "DTMA_RECONCILE_INTERVAL=1"),
            *("--env", "DTMA_OWNER_LABELS=" + ",".join(f"{k}={v}" for k, v in owner.items())),
            *("--publish", f"127.0.0.1::{CONTAINER_PORT}", image),
        )
    ).strip()
    try:
        url = f"http://{(await docker_cli('port', container_id, str(CONTAINER_PORT))).split()[0]}"
        async with aiohttp.ClientSession() as http:

            async def answers() -> bool:
                async with http.get(f"{url}/healthz") as response:
                    return response.status == 200

            await wait_until(answers, STARTUP_S, retrying_on=(aiohttp.ClientError,))
        yield container_id, url
    finally:
        print(await docker_cli("logs", "--tail", "30", container_id))  # shown if it failed
        await docker_cli("rm", "--force", container_id)
        await sweep(docker, owner)


async def networks_of(container_id: str) -> dict[str, Any]:
    networks: dict[str, Any] = (await inspect_raw("container", container_id))["NetworkSettings"][
        "Networks"
    ]
    return networks


async def deployed(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Deploy `body` through DTMA's API; each server's status once all its replicas are healthy."""
    async with http.post(f"{url}/mcp-servers/deploy", json=body) as response:
        assert response.status in (200, 202), await response.text()

    async def healthy(server: dict[str, Any]) -> dict[str, Any] | None:
        async with http.get(f"{url}/mcp-servers/{server['id']}") as response:
            status: dict[str, Any] = await response.json()
        return status if status.get("healthyReplicas") == server.get("replicas", 1) else None

    return {s["id"]: await wait_until(lambda s=s: healthy(s), 90) for s in body["mcpServers"]}


async def subnet_of(network: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    config = (await inspect_raw("network", network))["IPAM"]["Config"][0]
    return ipaddress.ip_network(config["Subnet"])


async def test_dtma_in_a_container_reaches_an_internal_group_over_its_network_then_leaves_it(
    in_container: tuple[str, str], mcp_image: str
) -> None:
    container_id, url = in_container
    group_id, server_id = f"reach-{secrets.token_hex(3)}", f"reach-s-{secrets.token_hex(3)}"
    network = f"dtma-{group_id}"
    body = {
        "groupId": group_id,
        "networkConfig": {"internal": True},
        "mcpServers": [{"id": server_id, "image": mcp_image, "replicas": 2}],
    }
    async with aiohttp.ClientSession(headers=AUTH) as http:
        status = (await deployed(http, url, body))[server_id]
        assert network in await networks_of(container_id)
        subnet = await subnet_of(network)
        endpoints = status["endpoints"]
        assert len(endpoints) == 2
        for endpoint in endpoints:
            address = URL(endpoint)
            assert ipaddress.ip_address(address.host) in subnet
            assert (address.port, address.path) == (8000, "/mcp")
        answers = await docker_cli("exec", container_id, IMAGE_PYTHON, "-c", INITIALIZE, *endpoints)
        assert len(answers.split()) == 2, answers

        await docker_cli("network", "disconnect", network, container_id)

        async def attached_again() -> bool:
            return network in await networks_of(container_id)

        await wait_until(attached_again, 30)  # the next pass puts it back

        async with http.delete(f"{url}/container-groups/{group_id}") as response:
            assert response.status in (200, 202), await response.text()

        async def network_gone() -> bool:
            listed = (await docker_cli("network", "ls", "--format", "{{.Name}}")).split()
            return network not in listed

        await wait_until(network_gone, 60)  # Docker refuses to remove it while DTMA is on it
        assert network not in await networks_of(container_id)


async def test_in_network_reach_a_port_is_published_on_the_host_only_when_a_server_asks(
    in_container: tuple[str, str], mcp_image: str
) -> None:
    _container_id, url = in_container
    group_id = f"reach-{secrets.token_hex(3)}"
    quiet, asking = f"{group_id}-quiet", f"{group_id}-asking"
    body = {
        "groupId": group_id,
        "mcpServers": [
            {"id": quiet, "image": mcp_image},
            {"id": asking, "image": mcp_image, "publishPort": True},
        ],
    }
    async with aiohttp.ClientSession(headers=AUTH) as http:
        statuses = await deployed(http, url, body)
    subnet = await subnet_of(f"dtma-{group_id}")
    for status in statuses.values():  # DTMA reaches both at their address
        [endpoint] = status["endpoints"]
        assert ipaddress.ip_address(URL(endpoint).host) in subnet

    def bound(details: dict[str, Any]) -> list[dict[str, str]]:
        return (details["NetworkSettings"]["Ports"] or {}).get("8000/tcp") or []

    [quiet_replica] = statuses[quiet]["instances"]
    assert not bound(await inspect_raw("container", quiet_replica["containerId"]))
    [asking_replica] = statuses[asking]["instances"]
    [binding] = bound(await inspect_raw("container", asking_replica["containerId"]))
    assert binding["HostIp"] == "127.0.0.1"
    answer = await mcp_initialize(f"http://127.0.0.1:{binding['HostPort']}/mcp")
    assert answer["result"]["protocolVersion"]


async def test_in_network_reach_a_legacy_tool_is_reached_at_its_address_with_no_free_port(
    in_container: tuple[str, str], mcp_image: str
) -> None:
    container_id, url = in_container
    name = f"tool-{secrets.token_hex(3)}"
    body = {
        "dockerImageUrl": mcp_image,
        "instanceNameOnToolbox": name,
        "accountToolInstanceId": f"ati-{name}",
    }
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.post(f"{url}/tools", json=body) as response:
            created = await response.json()
        assert response.status == 201, created
        assert created["data"]["ports"] == {}  # no free loopback port in network reach

        async def running() -> dict[str, Any] | None:
            async with http.get(f"{url}/mcp-servers/status") as response:
                servers = (await response.json())["mcpServers"]
            tool = next(s for s in servers if s["groupId"] == "legacy")
            return tool if tool["endpoints"] else None

        tool = await wait_until(running, 60)
    [endpoint] = tool["endpoints"]
    assert ipaddress.ip_address(URL(endpoint).host) in await subnet_of("dtma-legacy")

    async def answers() -> str:  # probed by nothing (health check none): it may still be starting
        return await docker_cli("exec", container_id, IMAGE_PYTHON, "-c", INITIALIZE, endpoint)

    assert len((await wait_until(answers, 30, retrying_on=(AssertionError,))).split()) == 1
