"""The Docker adapter's containers and group networks on the real engine: hardening and limits,
loopback ports, reaching a server by its id, internal networks, listing what is managed."""

from __future__ import annotations

import json
import secrets
from typing import Any

import aiohttp
import pytest

from service.docker.adapter import (
    MANAGED_LABEL,
    ContainerSpec,
    DockerAdapter,
    DockerConflictError,
    DockerNotFoundError,
)
from tests.support.docker import (
    TEST_RUN_ID,
    TEST_RUN_LABEL,
    run_detached,
    run_labels,
    run_to_completion,
)
from tests.support.docker_cli import docker_cli, inspect_raw, stop_container
from tests.support.mcp_image import CONTAINER_PORT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

MIB = 1024 * 1024
STARTUP_S = 30
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=3)
ACCEPT = "application/json, text/event-stream"
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "dtma-tests", "version": "0"},
        },
    }
)
SERVER_NAME = "dtma-test-mcp"  # tests/support/mcp_server/server.py


@pytest.fixture
def group() -> str:
    return f"t{secrets.token_hex(4)}"


def group_labels(group: str) -> dict[str, str]:
    return {**run_labels(), MANAGED_LABEL: "true", "dtma.group": group}


def server_spec(group: str, server: str, image: str, **options: Any) -> ContainerSpec:
    labels = {**group_labels(group), "dtma.server": server, "dtma.replica": "1"}
    return ContainerSpec(
        name=f"dtma-{group}-{server}-1",
        image=image,
        labels=labels,
        network=f"dtma-{group}",
        aliases=[server],
        container_port=CONTAINER_PORT,
        **options,
    )


async def answers_mcp(url: str) -> bool:
    """True once `url` answers an MCP initialize with 200."""
    headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http,
        http.post(url, data=INITIALIZE, headers=headers) as response,
    ):
        return response.status == 200


async def wait_for_mcp(url: str) -> None:
    await wait_until(
        lambda: answers_mcp(url),
        within=STARTUP_S,
        retrying_on=(aiohttp.ClientError, TimeoutError),
    )


async def run_on_network(
    docker: DockerAdapter, busybox: str, group: str, command: list[str]
) -> tuple[int, str]:
    spec = ContainerSpec(
        name=f"dtma-{group}-client-{secrets.token_hex(3)}",
        image=busybox,
        labels=group_labels(group),
        network=f"dtma-{group}",
        command=command,
    )
    return await docker.run_container_to_completion(spec, timeout_s=30)


def wget_initialize(host: str) -> list[str]:
    return [
        "wget",
        "-q",
        "-O-",
        "--header",
        f"Accept: {ACCEPT}",
        "--header",
        "Content-Type: application/json",
        "--post-data",
        INITIALIZE,
        f"http://{host}:{CONTAINER_PORT}/mcp",
    ]


async def test_servers_on_a_group_network_reach_each_other_by_server_id(
    docker: DockerAdapter, mcp_image: str, busybox: str, group: str
) -> None:
    await docker.ensure_network(f"dtma-{group}", group_labels(group), False)
    ports = []
    for server in ("search", "fetch"):
        container_id = await docker.create_container(server_spec(group, server, mcp_image))
        ports.append(await docker.start_container(container_id))
    for port in ports:
        assert port is not None
        await wait_for_mcp(f"http://127.0.0.1:{port}/mcp")

    search = await run_on_network(docker, busybox, group, wget_initialize("search"))
    fetch = await run_on_network(docker, busybox, group, wget_initialize("fetch"))
    stranger = await run_on_network(docker, busybox, group, wget_initialize("absent"))

    assert search[0] == 0 and SERVER_NAME in search[1]
    assert fetch[0] == 0 and SERVER_NAME in fetch[1]
    assert stranger[0] != 0 and "bad address" in stranger[1]


@pytest.mark.parametrize("internal", [False, True], ids=["bridge", "internal"])
async def test_an_internal_group_network_is_internal_and_publishes_no_port(
    docker: DockerAdapter, mcp_image: str, group: str, internal: bool
) -> None:
    # Reachability of the outside world is Docker's promise for `Internal` networks; the
    # tests never send traffic off this machine, so they check the network's settings.
    await docker.ensure_network(f"dtma-{group}", group_labels(group), internal)
    container_id = await docker.create_container(server_spec(group, "search", mcp_image))

    port = await docker.start_container(container_id)
    info = await docker.inspect_container(container_id)
    await wait_for_mcp(f"http://{info.ip_address}:{CONTAINER_PORT}/mcp")  # the host, directly

    assert (port is None) is internal
    assert info.host_port == port
    network = await inspect_raw("network", f"dtma-{group}")
    assert network["Internal"] is internal
    assert network["Driver"] == "bridge"


async def test_creates_a_hardened_container_with_its_limits_without_starting_it(
    docker: DockerAdapter, mcp_image: str, group: str
) -> None:
    spec = server_spec(
        group,
        "search",
        mcp_image,
        memory_mb=96,
        cpus=0.5,
        pids=100,
        cap_add=("NET_BIND_SERVICE",),
        env={"LOG_LEVEL": "debug"},
        command=["--flag"],
    )
    await docker.ensure_network(f"dtma-{group}", group_labels(group), False)

    container_id = await docker.create_container(spec)
    raw = await inspect_raw("container", container_id)
    info = await docker.inspect_container(container_id)

    host = raw["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == 96 * MIB
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 100
    assert host["CapDrop"] == ["ALL"]
    assert host["CapAdd"] == ["NET_BIND_SERVICE"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["RestartPolicy"]["Name"] == "no"
    assert host["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert raw["Config"]["Cmd"] == ["--flag"]
    assert "LOG_LEVEL=debug" in raw["Config"]["Env"]
    assert raw["NetworkSettings"]["Networks"][f"dtma-{group}"]["Aliases"] == ["search"]
    assert info.name == f"dtma-{group}-search-1"
    assert info.labels == {**spec.labels, MANAGED_LABEL: "true"}
    assert (info.state, info.running, info.exit_code, info.started_at) == (
        "created",
        False,
        None,
        None,
    )
    assert info.image == mcp_image


async def test_lists_managed_containers_with_their_ports_and_nothing_unmanaged(
    docker: DockerAdapter, mcp_image: str, busybox: str, group: str
) -> None:
    await docker.ensure_network(f"dtma-{group}", group_labels(group), False)
    server_id = await docker.create_container(server_spec(group, "search", mcp_image))
    port = await docker.start_container(server_id)
    exited = f"dtma-{group}-exited-1"
    await run_to_completion(docker, busybox, ["true"], run_labels())  # removed: not listed
    exited_spec = ContainerSpec(
        name=exited, image=busybox, labels=run_labels(), command=["sh", "-c", "exit 7"]
    )  # run_labels() only: the adapter adds dtma.managed=true
    exited_id = await docker.create_container(exited_spec)
    await docker.start_container(exited_id)
    await docker_cli("wait", exited_id)
    unmanaged = ["--label", f"{TEST_RUN_LABEL}={TEST_RUN_ID}", "--label", f"dtma.group={group}"]
    await docker_cli("create", *unmanaged, busybox, "true")
    await docker_cli("create", *unmanaged, "--label", f"{MANAGED_LABEL}=false", busybox, "true")

    listed = {info.name: info for info in await docker.list_managed()}
    ours = {name: info for name, info in listed.items() if info.labels.get("dtma.group") == group}

    assert sorted(ours) == [f"dtma-{group}-search-1"]  # the exited one has no dtma.group
    server = ours[f"dtma-{group}-search-1"]
    assert (server.id, server.host_port, server.running, server.state) == (
        server_id,
        port,
        True,
        "running",
    )
    assert server.started_at is not None and server.exit_code is None
    assert server.labels["dtma.server"] == "search"
    assert listed[exited].exit_code == 7
    assert listed[exited].running is False and listed[exited].finished_at is not None
    assert all(info.managed for info in listed.values())
    await wait_for_mcp(f"http://127.0.0.1:{port}/mcp")


async def test_stops_kills_and_removes_containers(
    docker: DockerAdapter, busybox: str, group: str
) -> None:
    spec = ContainerSpec(
        name=f"dtma-{group}-sleeper-1",
        image=busybox,
        labels=group_labels(group),
        command=["sleep", "600"],
    )
    first = await docker.create_container(spec)
    second = await docker.create_container(
        ContainerSpec(name=f"dtma-{group}-sleeper-2", image=busybox, labels=spec.labels,
                      command=["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"])
    )  # fmt: skip
    assert await docker.start_container(first) is None  # it publishes no port
    await docker.start_container(second)

    await docker.kill_container(first)
    await stop_container(docker, second, timeout_s=5)
    await stop_container(docker, second)  # stopped already: fine
    killed, stopped = await docker.inspect_container(first), await docker.inspect_container(second)
    with pytest.raises(DockerConflictError, match="is not running"):
        await docker.kill_container(first)
    await docker.remove_container(first)
    await docker.remove_container(first)  # gone already: fine

    assert (killed.state, killed.exit_code) == ("exited", 137)
    assert (stopped.state, stopped.exit_code) == ("exited", 0)
    with pytest.raises(DockerNotFoundError, match=f"container {first[:12]} not found"):
        await docker.inspect_container(first)
    with pytest.raises(DockerNotFoundError):
        await stop_container(docker, first)


async def test_reports_an_absent_image_a_name_in_use_and_an_absent_network(
    docker: DockerAdapter, busybox: str, group: str
) -> None:
    image = f"dtma-test/absent-{secrets.token_hex(4)}:1"
    spec = ContainerSpec(name=f"dtma-{group}-a-1", image=busybox, labels=group_labels(group))
    await docker.create_container(spec)
    lost = ContainerSpec(
        name=f"dtma-{group}-b-1",
        image=busybox,
        labels=group_labels(group),
        network=f"dtma-{group}-absent",
    )

    with pytest.raises(DockerNotFoundError, match=f"image {image} not found"):
        await docker.create_container(ContainerSpec(name=f"dtma-{group}-c-1", image=image))
    with pytest.raises(DockerConflictError, match="already in use"):
        await docker.create_container(spec)
    lost_id = await docker.create_container(lost)
    with pytest.raises(DockerNotFoundError, match=f"network dtma-{group}-absent not found"):
        await docker.start_container(lost_id)


async def test_ensures_a_group_network_once_and_refuses_to_change_its_kind(
    docker: DockerAdapter, group: str
) -> None:
    name = f"dtma-{group}"

    first = await docker.ensure_network(name, group_labels(group), False)
    again = await docker.ensure_network(name, group_labels(group), False)
    with pytest.raises(DockerConflictError, match="internal=False"):
        await docker.ensure_network(name, group_labels(group), True)
    listed = dict(await docker.list_managed_networks())
    await docker.remove_network(name)
    await docker.remove_network(name)  # gone already: fine

    assert first == again
    assert listed[name] == group_labels(group)
    assert name not in dict(await docker.list_managed_networks())


async def test_never_touches_a_network_it_does_not_manage(
    docker: DockerAdapter, group: str
) -> None:
    name = f"dtma-{group}"
    await docker_cli("network", "create", "--label", f"{TEST_RUN_LABEL}={TEST_RUN_ID}", name)
    try:
        with pytest.raises(DockerConflictError, match="not managed"):
            await docker.ensure_network(name, group_labels(group), False)
        with pytest.raises(DockerConflictError, match="not managed"):
            await docker.remove_network(name)
        assert name not in dict(await docker.list_managed_networks())
        assert (await inspect_raw("network", name))["Name"] == name
    finally:
        await docker_cli("network", "rm", name)


async def test_refuses_to_remove_a_network_in_use(
    docker: DockerAdapter, busybox: str, group: str
) -> None:
    name = f"dtma-{group}"
    await docker.ensure_network(name, group_labels(group), False)
    spec = ContainerSpec(
        name=f"{name}-sleeper-1",
        image=busybox,
        labels=group_labels(group),
        network=name,
        command=["sleep", "600"],
    )
    container_id = await docker.create_container(spec)
    await docker.start_container(container_id)

    with pytest.raises(DockerConflictError, match="active endpoints"):
        await docker.remove_network(name)
    await docker.remove_container(container_id)
    await docker.remove_network(name)

    assert name not in dict(await docker.list_managed_networks())


async def test_a_detached_run_still_publishes_its_port_and_carries_the_managed_label(
    docker: DockerAdapter, mcp_image: str, group: str
) -> None:
    container_id, port = await run_detached(
        docker,
        name=f"dtma-{group}-detached-1",
        image=mcp_image,
        labels=group_labels(group),
        memory_mb=256,
    )

    info = await docker.inspect_container(container_id)
    await wait_for_mcp(f"http://127.0.0.1:{port}/mcp")

    assert info.host_port == port
    assert info.labels[MANAGED_LABEL] == "true"
