"""What a request may make of a container, as the real engine holds it: capabilities from the
allow-list only, default limits, rotated logs, nothing of the host, and a host-wide cap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.app import create_app
from service.docker.adapter import DockerAdapter
from service.settings import Settings
from tests.acceptance.conftest import sweep
from tests.acceptance.test_orchestration import containers_of, until_running
from tests.conftest import AUTH
from tests.support.docker_cli import inspect_raw

pytestmark = pytest.mark.docker

MIB = 1024 * 1024
ABSENT = "dtma-test/absent:404"


def server(image: str, server_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": server_id, "image": image, "healthCheck": {"type": "none"}, **fields}


async def deploy(service: Any, group_id: str, *servers: dict[str, Any]) -> Any:
    body = {"groupId": group_id, "mcpServers": list(servers)}
    return await service.post("/mcp-servers/deploy", json=body, headers=AUTH)


async def log_length(service: Any) -> int:
    page = await (await service.get("/events?limit=1000", headers=AUTH)).json()
    return len(page["events"])


async def test_a_capability_off_the_allow_list_is_a_422_naming_it_and_records_nothing(
    service: Any, mcp_image: str
) -> None:
    before = await log_length(service)
    for names in (["ALL"], ["SYS_MODULE"], ["SYS_ADMIN"], ["DAC_READ_SEARCH"], ["CHOWN", "ALL"]):
        response = await deploy(service, "caps", server(mcp_image, "caps-s", capAdd=names))

        assert response.status == 422, await response.text()
        error = (await response.json())["error"]
        assert names[-1] in error["message"]
        assert error["details"][0]["field"] == f"mcpServers.0.capAdd.{len(names) - 1}"
    assert await log_length(service) == before


async def test_an_allowed_capability_defaults_and_log_rotation_reach_the_host_config(
    service: Any, docker: DockerAdapter, mcp_image: str, owner_labels: dict[str, str]
) -> None:
    response = await deploy(
        service, "safe", server(mcp_image, "safe-s", capAdd=["NET_BIND_SERVICE"])
    )
    assert response.status == 202, await response.text()
    await until_running(service, "safe-s", 1, after=(await response.json())["position"])

    (container,) = await containers_of(docker, owner_labels, "safe-s")
    host = (await inspect_raw("container", container.id))["HostConfig"]

    assert host["CapAdd"] == ["NET_BIND_SERVICE"] and host["CapDrop"] == ["ALL"]
    assert host["Privileged"] is False and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == 512 * MIB and host["NanoCpus"] == 1_000_000_000  # the defaults
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": "10m"},
    }
    assert not host.get("Binds") and not host.get("Mounts") and not host.get("Devices")
    assert host["NetworkMode"] == "dtma-safe" and host["PidMode"] in ("", "private")
    assert host["IpcMode"] in ("private", "shareable", "none")


async def test_a_legacy_tool_gets_none_of_the_docker_options_it_names(
    service: Any, docker: DockerAdapter, mcp_image: str, owner_labels: dict[str, str]
) -> None:
    hostile = {
        "Privileged": True,
        "Binds": ["/:/host"],
        "NetworkMode": "host",
        "PidMode": "host",
        "IpcMode": "host",
        "CapAdd": ["ALL"],
        "SecurityOpt": ["seccomp=unconfined"],
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x"}],
    }
    body = {
        "dockerImageUrl": mcp_image,
        "instanceNameOnToolbox": "hostile-tool",
        "accountToolInstanceId": "a-1",
        "baseConfigOverrideJson": {"HostConfig": hostile},
    }
    response = await service.post("/tools", json=body, headers=AUTH)
    assert response.status == 201, await response.text()
    container_id = (await response.json())["data"]["container_id"]

    host = (await inspect_raw("container", container_id))["HostConfig"]

    assert host["Privileged"] is False and not host.get("Binds") and not host.get("Devices")
    assert not host.get("CapAdd") and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] == "dtma-legacy" and host["PidMode"] in ("", "private")
    assert host["IpcMode"] != "host"


async def test_deploys_and_scales_past_the_host_cap_are_409_capacity_exceeded(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    docker: DockerAdapter,
    owner_labels: dict[str, str],
) -> None:
    """Counted from the desired state: an image that is not there makes no container, and the
    replicas still count."""
    client = await aiohttp_client(create_app(service_settings(max_containers=3)))
    try:
        assert (await deploy(client, "cap", server(ABSENT, "cap-a", replicas=2))).status == 202

        over = await client.put(
            "/mcp-servers/scale", json={"mcpServerId": "cap-a", "replicas": 4}, headers=AUTH
        )
        another = await deploy(client, "cap2", server(ABSENT, "cap-b", replicas=2))
        within = await deploy(client, "cap2", server(ABSENT, "cap-b", replicas=1))

        assert over.status == 409 and another.status == 409, await another.text()
        assert (await over.json())["error"]["code"] == "capacity_exceeded"
        assert (await another.json())["error"]["code"] == "capacity_exceeded"
        assert within.status == 202, await within.text()
    finally:
        await client.close()
        await sweep(docker, owner_labels)
