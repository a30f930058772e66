"""`kill -9` the service, change Docker behind its back, start it again: Docker converges."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from service.docker.adapter import ContainerSpec, DockerAdapter
from tests.acceptance.conftest import sweep
from tests.conftest import AUTH
from tests.support.service_process import Service
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield session


async def server_status(http: aiohttp.ClientSession, url: str, server_id: str) -> dict[str, Any]:
    async with http.get(f"{url}/mcp-servers/{server_id}") as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def test_a_restart_after_kill_9_recreates_what_was_removed_and_removes_orphans(
    tmp_path: Path,
    docker: DockerAdapter,
    mcp_image: str,
    owner_labels: dict[str, str],
    http: aiohttp.ClientSession,
) -> None:
    service = Service(f"sqlite:///{tmp_path / 'dtma.db'}", tmp_path, owner_labels)
    try:
        await service.start(http)
        body = {
            "groupId": "crash",
            "mcpServers": [{"id": "crash-a", "image": mcp_image, "replicas": 2}],
        }
        async with http.post(f"{service.url}/mcp-servers/deploy?wait=true", json=body) as response:
            assert response.status == 200, await response.text()
        before = await server_status(http, service.url, "crash-a")
        first, second = (i["containerId"] for i in before["instances"])
        async with http.get(f"{service.url}/healthz") as response:
            instance = (await response.json())["instance"]

        await service.kill(signal.SIGKILL)
        await docker.remove_container(second)
        orphan = await docker.create_container(
            ContainerSpec(
                name=f"dtma-ghost-{owner_labels['dtma.test-app']}",
                image=mcp_image,
                labels={
                    **owner_labels,
                    "dtma.group": "crash",
                    "dtma.server": "ghost",
                    "dtma.replica": "1",
                    # as this instance labels what it creates: made, then the crash came
                    "dtma.instance": instance,
                },
            )
        )

        await service.start(http)

        async def converged() -> list[Any] | None:
            mine = [
                c
                for c in await docker.list_managed()
                if all(c.labels.get(k) == v for k, v in owner_labels.items())
            ]
            servers = sorted((c.labels["dtma.server"], c.labels["dtma.replica"]) for c in mine)
            running = all(c.running for c in mine)
            return mine if servers == [("crash-a", "1"), ("crash-a", "2")] and running else None

        containers = await wait_until(converged, 60)
        ids = {c.labels["dtma.replica"]: c.id for c in containers}
        assert ids["1"] == first  # untouched
        assert ids["2"] != second  # recreated, once
        assert orphan not in ids.values()

        async def reported() -> bool:
            status = await server_status(http, service.url, "crash-a")
            return status["runningReplicas"] == 2 and {
                i["containerId"] for i in status["instances"]
            } == set(ids.values())

        await wait_until(reported, 30)
        async with http.get(f"{service.url}/events?limit=1000") as response:
            log = (await response.json())["events"]
        gone = [e["data"] for e in log if e["type"] == "ContainerRemoved"]
        assert {"container_id": second, "reason": "removed outside DTMA"}.items() <= gone[0].items()
        [orphan_removed] = [g for g in gone if g["container_id"] == orphan]
        assert orphan_removed["reason"] == "server removed"  # what the reconciler did, and why
        async with http.get(f"{service.url}/audit/verify") as response:
            assert (await response.json())["ok"] is True
    finally:
        await service.kill(signal.SIGTERM)
        await sweep(docker, owner_labels)
