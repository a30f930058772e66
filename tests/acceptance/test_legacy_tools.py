"""The legacy single-tool routes of today's backend on a real Docker engine, over HTTP."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from service.api.keys import reconciler_key
from service.app import create_app
from service.docker.adapter import ContainerInfo, DockerAdapter
from service.settings import Settings
from tests.acceptance.conftest import sweep
from tests.conftest import AUTH
from tests.support.docker_cli import inspect_raw
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker


def unique(name: str) -> str:
    return f"{name} {secrets.token_hex(3)}"


def tool_body(image: str, name: str, **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dockerImageUrl": image,
        "instanceNameOnToolbox": name,
        "accountToolInstanceId": f"ati-{name}",
    }
    if config:
        body["baseConfigOverrideJson"] = config
    return body


async def call(service: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = await service.request(method, path, json=body, headers=AUTH)
    return response.status, await response.json()


def path(name: str, action: str = "") -> str:
    return f"/tools/{quote(name, safe='')}" + (f"/{action}" if action else "")


async def listed(service: Any, name: str) -> dict[str, Any] | None:
    status, body = await call(service, "GET", "/status")
    assert status == 200, body
    return next((t for t in body["tool_instances"] if t["instance_name_on_toolbox"] == name), None)


async def containers_of(docker: DockerAdapter, owner: dict[str, str]) -> list[ContainerInfo]:
    return [
        c
        for c in await docker.list_managed()
        if all(c.labels.get(k) == v for k, v in owner.items())
    ]


async def test_a_tool_is_created_listed_stopped_started_and_deleted(
    service: Any, docker: DockerAdapter, mcp_image: str, owner_labels: dict[str, str]
) -> None:
    name = unique("round-trip")
    status, created = await call(service, "POST", "/tools", tool_body(mcp_image, name))
    assert status == 201, created
    assert created["success"] is True and "deployed" in created["message"]
    data = created["data"]
    assert data["instance_name_on_toolbox"] == name and data["account_tool_instance_id"]
    assert data["state"] == "running" and data["image"] == mcp_image
    [container] = await containers_of(docker, owner_labels)
    assert data["container_id"] == container.id and container.running
    assert set(data["ports"]) == {"8000/tcp"}

    tool = await listed(service, name)
    assert tool is not None and tool["status"] == "running" and tool["created"]
    assert tool["container_id"] == container.id and tool["image"] == mcp_image

    async def gone() -> bool:
        return not await containers_of(docker, owner_labels)

    for _twice in range(2):
        status, stopped = await call(service, "POST", path(name, "stop"))
        assert status == 200 and stopped["success"] and stopped["data"]["state"] == "stopped"
        await wait_until(gone, 30)  # recorded as removed just before Docker removes it
    assert (await listed(service, name) or {}).get("status") == "stopped"

    status, started = await call(service, "POST", path(name, "start"))
    assert status == 200 and started["data"]["state"] == "running", started
    [restarted] = await containers_of(docker, owner_labels)
    assert restarted.running and (await listed(service, name) or {})["container_id"] == restarted.id

    status, removed = await call(service, "DELETE", path(name))
    assert status == 200 and removed == {"success": True, "message": removed["message"]}
    await wait_until(gone, 30)
    assert await listed(service, name) is None
    for method, action in (("DELETE", ""), ("POST", "start"), ("POST", "stop")):
        status, unknown = await call(service, method, path(name, action))
        assert status == 404 and unknown["success"] is False and name in unknown["error"]


async def test_a_name_docker_refuses_names_the_tool_not_the_container(
    service: Any, docker: DockerAdapter, mcp_image: str, owner_labels: dict[str, str]
) -> None:
    name, port = unique("My Tool 1"), free_port()
    body = tool_body(
        mcp_image,
        name,
        Env=["ROLE=legacy"],
        HostConfig={"PortBindings": {"8000/tcp": [{"HostPort": str(port)}]}},
    )
    status, created = await call(service, "POST", "/tools", body)
    assert status == 201, created
    assert created["data"]["ports"] == {
        "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    }
    details = await inspect_raw("container", created["data"]["container_id"])
    assert " " not in details["Name"] and details["Name"].startswith("/dtma_legacy_tool-my-tool-1-")
    assert details["Config"]["Labels"]["dtma.tool.name"] == name
    assert "ROLE=legacy" in details["Config"]["Env"]
    bindings = details["HostConfig"]["PortBindings"]["8000/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]

    async def answers() -> bool:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
        return True

    await wait_until(answers, 30, retrying_on=(OSError,))
    status, stopped = await call(service, "POST", path(name, "stop"))
    assert status == 200 and stopped["data"]["state"] == "stopped"
    assert (await call(service, "DELETE", path(name)))[0] == 200

    async def gone() -> bool:
        return not await containers_of(docker, owner_labels)

    await wait_until(gone, 30)


async def test_a_name_or_host_port_in_use_is_a_409_in_the_legacy_envelope(
    service: Any, mcp_image: str
) -> None:
    name, port = unique("dup"), free_port()
    ports = {"PortBindings": {"8000/tcp": [{"HostPort": str(port)}]}}
    status, _created = await call(service, "POST", "/tools", tool_body(mcp_image, name))
    assert status == 201
    status, again = await call(service, "POST", "/tools", tool_body(mcp_image, name))
    assert status == 409 and again == {"success": False, "error": again["error"]}
    assert "already exists" in again["error"]

    first = tool_body(mcp_image, unique("port-a"), HostConfig=ports)
    assert (await call(service, "POST", "/tools", first))[0] == 201
    status, taken = await call(
        service, "POST", "/tools", tool_body(mcp_image, unique("port-b"), HostConfig=ports)
    )
    assert status == 409 and str(port) in taken["error"] and taken["success"] is False


async def test_refusals_use_the_legacy_envelope_and_record_nothing(service: Any) -> None:
    status, missing = await call(service, "POST", "/tools", {"dockerImageUrl": "x:1"})
    assert status == 400 and missing["success"] is False
    assert (
        "instanceNameOnToolbox" in missing["error"] and "accountToolInstanceId" in missing["error"]
    )

    bad_env = tool_body("x:1", "t", Env=["not an assignment"])
    status, invalid = await call(service, "POST", "/tools", bad_env)
    assert status == 400 and "Env" in invalid["error"]

    status, absent = await call(service, "POST", "/tools", tool_body("dtma-test/absent:404", "t"))
    assert status == 404 and "dtma-test/absent:404" in absent["error"]

    unauthorised = await service.post("/tools", json=tool_body("x:1", "t"))
    assert unauthorised.status == 401
    assert (await unauthorised.json()) == {
        "success": False,
        "error": "a valid bearer token is required",
    }
    assert (await service.get("/status")).status == 401

    status, not_allowed = await call(service, "GET", "/tools")
    assert status == 405 and not_allowed["success"] is False
    events = (await (await service.get("/events", headers=AUTH)).json())["events"]
    assert events == []


async def test_a_tool_docker_cannot_start_is_an_error_and_removed_again(
    service: Any, docker: DockerAdapter, mcp_image: str, owner_labels: dict[str, str]
) -> None:
    name = unique("busy-port")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        body = tool_body(
            mcp_image, name, HostConfig={"PortBindings": {"8000/tcp": [{"HostPort": str(port)}]}}
        )
        status, failed = await call(service, "POST", "/tools", body)
    assert status == 502 and failed["success"] is False and "failed to start" in failed["error"]
    assert await listed(service, name) is None

    async def no_container() -> bool:
        return not await containers_of(docker, owner_labels)

    await wait_until(no_container, 30)
    assert (await call(service, "POST", "/tools", body))[0] == 201  # the name is free again


async def test_a_tool_survives_a_restart_of_the_service_with_its_container(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    docker: DockerAdapter,
    mcp_image: str,
    owner_labels: dict[str, str],
) -> None:
    name = unique("survivor")
    try:
        first = await aiohttp_client(create_app(service_settings()))
        status, created = await call(first, "POST", "/tools", tool_body(mcp_image, name))
        assert status == 201, created
        await first.close()

        second = await aiohttp_client(create_app(service_settings()))
        await second.app[reconciler_key].reconcile_once()
        tool = await listed(second, name)
        assert tool is not None and tool["status"] == "running"
        assert tool["container_id"] == created["data"]["container_id"]
        [container] = await containers_of(docker, owner_labels)
        assert container.id == tool["container_id"]
        await second.close()
    finally:
        await sweep(docker, owner_labels)
