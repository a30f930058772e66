"""Deploy, scale and remove groups of MCP servers on a real Docker engine, over HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from service.docker.adapter import ContainerInfo, DockerAdapter
from tests.conftest import AUTH
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker


async def status_of(service: Any, server_id: str, after: int = 0) -> dict[str, Any]:
    response = await service.get(f"/mcp-servers/{server_id}?minPosition={after}", headers=AUTH)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def until_running(
    service: Any, server_id: str, replicas: int, after: int = 0, within: float = 60
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        status = await status_of(service, server_id, after)
        assert status["status"] != "failed", status
        ok = status["status"] == "running" and status["runningReplicas"] == replicas
        return status if ok else None

    return await wait_until(probe, within)


async def send(service: Any, method: str, path: str, body: Any = None) -> int:
    """A command that must be accepted; returns the position it appended."""
    response = await service.request(method, path, json=body, headers=AUTH)
    assert response.status in (200, 202), await response.text()
    position: int = (await response.json())["position"]
    return position


async def containers_of(
    docker: DockerAdapter, owner: dict[str, str], server_id: str
) -> list[ContainerInfo]:
    found = [
        c
        for c in await docker.list_managed()
        if c.labels.get("dtma.server") == server_id
        and all(c.labels.get(k) == v for k, v in owner.items())
    ]
    return sorted(found, key=lambda c: int(c.labels["dtma.replica"]))


async def mcp_initialize(endpoint: str) -> dict[str, Any]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "dtma-test", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(endpoint, json=body, headers=headers) as response,
    ):
        assert response.status == 200
        text = await response.text()
    if response.content_type == "text/event-stream":
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    answer: dict[str, Any] = json.loads(text)
    return answer


async def docker_inspect(container_id: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "docker", "inspect", container_id, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    details: dict[str, Any] = json.loads(out)[0]
    return details


def deploy_body(image: str, group_id: str) -> dict[str, Any]:
    return {
        "groupId": group_id,
        "resourceLimits": {"memoryMb": 256, "cpus": 0.5},
        "mcpServers": [
            {
                "id": f"{group_id}-api",
                "image": image,
                "replicas": 2,
                "dependsOn": [f"{group_id}-db"],
                "resourceLimits": {"memoryMb": 128},
                "env": {"ROLE": "api"},
            },
            {"id": f"{group_id}-db", "image": image, "env": {"ROLE": "db"}},
        ],
    }


async def test_deploys_a_group_in_dependency_order_with_labels_network_limits_and_endpoints(
    service: Any, docker: DockerAdapter, mcp_image: str, owner_labels: dict[str, str]
) -> None:
    response = await service.post(
        "/mcp-servers/deploy", json=deploy_body(mcp_image, "res"), headers=AUTH
    )
    assert response.status == 202, await response.text()
    accepted = await response.json()
    assert accepted["groupId"] == "res" and sorted(accepted["mcpServers"]) == ["res-api", "res-db"]
    deployed = accepted["position"]

    api = await until_running(service, "res-api", 2, after=deployed)
    await until_running(service, "res-db", 1, after=deployed)

    log = (await (await service.get("/events?limit=1000", headers=AUTH)).json())["events"]
    started = {
        (e["data"]["server_id"], e["data"]["replica"]): e["position"]
        for e in log
        if e["type"] == "ContainerStarted"
    }
    created = {
        (e["data"]["server_id"], e["data"]["replica"]): e["position"]
        for e in log
        if e["type"] == "ContainerCreated"
    }
    assert started[("res-db", 1)] < min(created[("res-api", 1)], created[("res-api", 2)])

    api_containers = await containers_of(docker, owner_labels, "res-api")
    assert [c.name.lstrip("/") for c in api_containers] == [
        "dtma_res_res-api_1",
        "dtma_res_res-api_2",
    ]
    for container in api_containers:
        assert (
            container.labels["dtma.managed"] == "true" and container.labels["dtma.group"] == "res"
        )
    inspected = await docker_inspect(api_containers[0].id)
    host = inspected["HostConfig"]
    assert host["Memory"] == 128 * 1024 * 1024 and host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 512 and host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"] and host["RestartPolicy"]["Name"] == "no"
    assert "dtma-res" in inspected["NetworkSettings"]["Networks"]
    assert "res-api" in inspected["NetworkSettings"]["Networks"]["dtma-res"]["Aliases"]

    assert len(api["endpoints"]) == 2
    for endpoint in api["endpoints"]:
        # "running" is Docker's word; the server inside needs a moment to listen.
        answer = await wait_until(
            lambda e=endpoint: mcp_initialize(e), 30, retrying_on=(aiohttp.ClientError,)
        )
        assert answer["result"]["protocolVersion"]

    group = await (await service.get("/container-groups/res", headers=AUTH)).json()
    assert group["status"] == "running" and group["network"]["name"] == "dtma-res"


async def test_scales_up_and_down_then_removes_a_server_and_its_group(
    service: Any, docker: DockerAdapter, mcp_image: str, owner_labels: dict[str, str]
) -> None:
    body = {"groupId": "sc", "mcpServers": [{"id": "sc-one", "image": mcp_image, "replicas": 2}]}
    deployed = await send(service, "POST", "/mcp-servers/deploy", body)
    await until_running(service, "sc-one", 2, after=deployed)

    for replicas in (3, 1):
        scale = {"mcpServerId": "sc-one", "replicas": replicas}
        scaled = await send(service, "PUT", "/mcp-servers/scale", scale)
        await until_running(service, "sc-one", replicas, after=scaled)

        async def settled(n: int = replicas) -> bool:
            return len(await containers_of(docker, owner_labels, "sc-one")) == n

        await wait_until(settled, 30)
    [survivor] = await containers_of(docker, owner_labels, "sc-one")
    assert survivor.labels["dtma.replica"] == "1"

    assert (await service.delete("/mcp-servers/sc-one", headers=AUTH)).status == 202

    async def no_containers() -> bool:
        return not await containers_of(docker, owner_labels, "sc-one")

    await wait_until(no_containers, 30)
    assert (await service.get("/mcp-servers/sc-one", headers=AUTH)).status == 404

    assert (await service.delete("/container-groups/sc", headers=AUTH)).status == 202

    async def no_network() -> bool:
        names = [name for name, _ in await docker.list_managed_networks()]
        return "dtma-sc" not in names

    await wait_until(no_network, 30)


async def test_a_missing_image_fails_clearly_and_leaves_nothing_behind(
    service: Any, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    body = {"groupId": "miss", "mcpServers": [{"id": "miss-x", "image": "dtma-test/absent:404"}]}
    deployed = await send(service, "POST", "/mcp-servers/deploy", body)

    async def failed() -> dict[str, Any] | None:
        status = await status_of(service, "miss-x", deployed)
        return status if status["status"] == "failed" else None

    status = await wait_until(failed, 30)
    # a missing image is a failed pull (issue 15), not a container that failed to start
    assert "dtma-test/absent:404" in status["reason"] and status["instances"] == []
    assert not await containers_of(docker, owner_labels, "miss-x")
    log = (await (await service.get("/events?limit=1000", headers=AUTH)).json())["events"]
    assert any(e["type"] == "ImagePullFailed" for e in log)
    assert not any(e["type"] == "ContainerFailedToStart" for e in log)

    assert (await service.delete("/container-groups/miss", headers=AUTH)).status == 202

    async def gone() -> bool:
        return "dtma-miss" not in [name for name, _ in await docker.list_managed_networks()]

    await wait_until(gone, 30)


async def test_refuses_bad_deployments_with_the_error_shape_and_appends_nothing(
    service: Any,
) -> None:
    cases = [
        (
            {"groupId": "g", "mcpServers": [{"id": "a", "image": "x:1", "dependsOn": ["ghost"]}]},
            422,
        ),
        (
            {
                "groupId": "g",
                "mcpServers": [
                    {"id": "a", "image": "x:1", "dependsOn": ["b"]},
                    {"id": "b", "image": "x:1", "dependsOn": ["a"]},
                ],
            },
            422,
        ),
        ({"groupId": "g", "mcpServers": [{"id": "a", "image": "x:1", "replicas": 21}]}, 422),
        ({"groupId": "g", "mcpServers": [{"id": "a", "image": "x:1", "bogus": True}]}, 422),
    ]
    for body, expected in cases:
        response = await service.post("/mcp-servers/deploy", json=body, headers=AUTH)
        assert response.status == expected, body
        assert set((await response.json())["error"]) == {"code", "message", "details"}
    scale = await service.put(
        "/mcp-servers/scale", json={"mcpServerId": "nope", "replicas": 1}, headers=AUTH
    )
    assert scale.status == 404
    assert (await (await service.get("/events", headers=AUTH)).json())["events"] == []


async def test_an_unlabelled_container_is_never_touched(
    service: Any, docker: DockerAdapter, mcp_image: str, owner_labels: dict[str, str]
) -> None:
    bystander = await asyncio.create_subprocess_exec(
        "docker",
        "run",
        "-d",
        "--label",
        f"dtma.test-app={owner_labels['dtma.test-app']}",
        "--label",
        "dtma.test-run=" + owner_labels["dtma.test-run"],
        mcp_image,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await bystander.communicate()
    container_id = out.decode().strip()
    try:
        body = {"groupId": "by", "mcpServers": [{"id": "by-one", "image": mcp_image}]}
        deployed = await send(service, "POST", "/mcp-servers/deploy", body)
        await until_running(service, "by-one", 1, after=deployed)
        info = await docker.inspect_container(container_id)
        assert info.running
    finally:
        await docker.remove_container(container_id)


async def test_deploy_with_wait_answers_once_running_on_an_internal_network(
    service: Any, mcp_image: str
) -> None:
    body = {
        "groupId": "int",
        "networkConfig": {"internal": True},
        "mcpServers": [{"id": "int-one", "image": mcp_image, "replicas": 2}],
    }
    response = await service.post(
        "/mcp-servers/deploy?wait=true&timeout=60000", json=body, headers=AUTH
    )
    assert response.status == 200, await response.text()
    [status] = (await response.json())["mcpServers"]
    assert status["runningReplicas"] == 2 and status["status"] == "running"
    # An internal network publishes no port: the host reaches each replica at its address.
    assert len(status["endpoints"]) == 2
    for endpoint in status["endpoints"]:
        assert not endpoint.startswith("http://127.0.0.1")
        answer = await wait_until(
            lambda e=endpoint: mcp_initialize(e), 30, retrying_on=(aiohttp.ClientError,)
        )
        assert answer["result"]["protocolVersion"]


async def test_deploy_with_wait_reports_a_failure_at_once_and_a_timeout_with_the_status(
    service: Any, mcp_image: str
) -> None:
    missing = {"groupId": "w1", "mcpServers": [{"id": "w1-x", "image": "dtma-test/absent:1"}]}
    failed = await service.post("/mcp-servers/deploy?wait=true", json=missing, headers=AUTH)
    assert failed.status == 422
    error = (await failed.json())["error"]
    assert error["code"] == "deploy_failed" and error["details"][0]["status"] == "failed"

    slow = {"groupId": "w2", "mcpServers": [{"id": "w2-x", "image": mcp_image}]}
    timed_out = await service.post(
        "/mcp-servers/deploy?wait=true&timeout=1", json=slow, headers=AUTH
    )
    assert timed_out.status == 504
    assert (await timed_out.json())["error"]["details"][0]["id"] == "w2-x"
    bad = await service.post("/mcp-servers/deploy?wait=maybe", json=slow, headers=AUTH)
    assert bad.status == 422


async def test_a_replica_killed_from_outside_is_seen_and_replaced(
    service: Any, docker: DockerAdapter, mcp_image: str, owner_labels: dict[str, str]
) -> None:
    body = {"groupId": "kill", "mcpServers": [{"id": "kill-a", "image": mcp_image}]}
    deployed = await send(service, "POST", "/mcp-servers/deploy?wait=true", body)
    [victim] = await containers_of(docker, owner_labels, "kill-a")

    await docker.kill_container(victim.id)

    async def replaced() -> dict[str, Any] | None:
        status = await status_of(service, "kill-a", deployed)
        [instance] = status["instances"] or [None]
        fresh = instance and instance["containerId"] != victim.id
        return status if fresh and status["status"] == "running" else None

    status = await wait_until(replaced, 60)
    assert status["instances"][0]["restartCount"] == 1
    log = (await (await service.get("/events?limit=1000", headers=AUTH)).json())["events"]
    died = [e["data"] for e in log if e["type"] == "ContainerDied"]
    assert died and died[0]["container_id"] == victim.id and died[0]["exit_code"] == 137


@pytest.mark.postgres
async def test_the_deploy_path_runs_on_postgresql(
    aiohttp_client: Any,
    service_settings: Any,
    postgres_url: str,
    docker: DockerAdapter,
    mcp_image: str,
    owner_labels: dict[str, str],
) -> None:
    from service.app import create_app
    from tests.acceptance.conftest import sweep

    client = await aiohttp_client(create_app(service_settings(database_url=postgres_url)))
    try:
        body = {"groupId": "pg", "mcpServers": [{"id": "pg-a", "image": mcp_image, "replicas": 2}]}
        response = await client.post("/mcp-servers/deploy?wait=true", json=body, headers=AUTH)
        assert response.status == 200, await response.text()
        assert len(await containers_of(docker, owner_labels, "pg-a")) == 2
        removed = await send(client, "DELETE", "/container-groups/pg")

        async def gone() -> bool:
            status = await client.get(f"/mcp-servers/pg-a?minPosition={removed}", headers=AUTH)
            return status.status == 404 and not await containers_of(docker, owner_labels, "pg-a")

        await wait_until(gone, 30)
    finally:
        await client.close()
        await sweep(docker, owner_labels)


async def test_init_containers_run_first_and_a_failing_one_fails_the_deploy_with_its_log(
    service: Any, docker: DockerAdapter, mcp_image: str
) -> None:
    from tests.support.images import ensure_busybox_image

    busybox = await ensure_busybox_image(docker)
    ok = {
        "groupId": "ini",
        "mcpServers": [
            {
                "id": "ini-ok",
                "image": mcp_image,
                "initContainers": [{"image": busybox, "command": ["sh", "-c", "echo migrated"]}],
            }
        ],
    }
    response = await service.post("/mcp-servers/deploy?wait=true", json=ok, headers=AUTH)
    assert response.status == 200, await response.text()
    log = (await (await service.get("/events?limit=1000", headers=AUTH)).json())["events"]
    kinds = [e["type"] for e in log if e["streamId"] == "server-ini-ok"]
    assert kinds.index("InitContainerCompleted") < kinds.index("ContainerCreated")

    broken = {
        "groupId": "ini",
        "mcpServers": [
            {
                "id": "ini-bad",
                "image": mcp_image,
                "initContainers": [
                    {"image": busybox, "command": ["sh", "-c", "echo no-schema >&2; exit 4"]}
                ],
            }
        ],
    }
    failed = await service.post("/mcp-servers/deploy?wait=true", json=broken, headers=AUTH)
    assert failed.status == 422, await failed.text()
    [status] = (await failed.json())["error"]["details"]
    reason = status["instances"][0]["reason"]
    assert "exited with 4" in reason and "no-schema" in reason


async def test_an_oom_killed_replica_is_recorded_as_such(service: Any, mcp_image: str) -> None:
    body = {
        "groupId": "oom",
        "mcpServers": [
            {
                "id": "oom-a",
                "image": mcp_image,
                "env": {"MCP_ALLOCATE_MB": "200"},
                "resourceLimits": {"memoryMb": 64},
            }
        ],
    }
    await send(service, "POST", "/mcp-servers/deploy", body)

    async def oom_death() -> dict[str, Any] | None:
        log = (await (await service.get("/events?limit=1000", headers=AUTH)).json())["events"]
        died = [e["data"] for e in log if e["type"] == "ContainerDied"]
        return died[0] if died else None

    died = await wait_until(oom_death, 60)
    assert died["oom_killed"] is True and died["exit_code"] == 137
