"""Each DTMA has an id, kept in its own database; it labels what it creates with it and touches
nothing another instance made on the same engine, which it reports as foreign."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.api.keys import reconciler_key
from service.app import create_app
from service.docker.adapter import ContainerSpec, DockerAdapter
from service.settings import Settings
from tests.conftest import AUTH
from tests.support.docker_cli import inspect_raw
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker


async def instance_of(client: Any) -> str:
    body = await (await client.get("/healthz")).json()
    instance: str = body["instance"]
    return instance


async def test_an_instance_keeps_the_id_its_database_holds_across_restarts(
    service_settings: Callable[..., Settings], docker: DockerAdapter, tmp_path: Path
) -> None:
    ids = []
    for _start in range(2):
        client: Any
        async with TestClient(TestServer(create_app(service_settings()))) as client:
            ids.append(await instance_of(client))
            legacy = await (await client.get("/status", headers=AUTH)).json()
            assert legacy["instance"] == ids[-1]
    assert ids[0] == ids[1] and len(ids[0]) == 16
    other = service_settings(database_url=f"sqlite:///{tmp_path / 'other.db'}")
    async with TestClient(TestServer(create_app(other))) as client:
        assert await instance_of(client) != ids[0]  # another database, another instance


async def test_another_instances_containers_are_reported_and_never_removed_or_recorded(
    service: Any, docker: DockerAdapter, owner_labels: dict[str, str], busybox: str
) -> None:
    def foreign(server: str, **extra: str) -> ContainerSpec:
        labels = {**owner_labels, "dtma.group": "elsewhere", "dtma.server": server}
        return ContainerSpec(
            name=f"dtma-foreign-{secrets.token_hex(4)}",
            image=busybox,
            labels={**labels, "dtma.replica": "1", **extra},
            command=["sleep", "600"],
        )

    other = secrets.token_hex(8)
    labelled = await docker.create_container(foreign("theirs", **{"dtma.instance": other}))
    unlabelled = await docker.create_container(foreign("older"))  # made before instance ids
    for container_id in (labelled, unlabelled):
        await docker.start_container(container_id)

    await service.app[reconciler_key].reconcile_once()
    await service.app[reconciler_key].reconcile_once()

    for container_id in (labelled, unlabelled):
        assert (await docker.inspect_container(container_id)).running
    report = await (await service.get("/health/comprehensive", headers=AUTH)).json()
    found = {c["containerId"]: c for c in report["foreignContainers"]}
    assert found[labelled]["instance"] == other and found[unlabelled]["instance"] is None
    assert found[labelled]["mcpServerId"] == "theirs"
    log = (await (await service.get("/events?limit=1000", headers=AUTH)).json())["events"]
    assert not [e for e in log if e["data"].get("container_id") in (labelled, unlabelled)]


async def test_what_an_instance_creates_carries_its_id(
    service: Any, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    instance = await instance_of(service)
    created = await service.post(
        "/container-groups", json={"id": "mine", "name": "mine"}, headers=AUTH
    )
    assert created.status == 201, await created.text()

    async def network() -> dict[str, Any] | None:
        for name, labels in await docker.list_managed_networks():
            if name == "dtma-mine" and labels.get("dtma.test-app") == owner_labels["dtma.test-app"]:
                inspected: dict[str, Any] = await inspect_raw("network", name)
                return inspected
        return None

    inspected = await wait_until(network, 30)
    assert inspected["Labels"]["dtma.instance"] == instance
