"""Images from a real registry (htpasswd auth on 127.0.0.1): pulled with stored credentials,
pinned by digest for a server's declaration, failures recorded without tripping the breaker,
and the registry password nowhere it should not be."""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from service.app import create_app
from service.docker.adapter import ContainerInfo, DockerAdapter
from service.settings import Settings
from tests.acceptance.conftest import sweep
from tests.acceptance.test_credentials import Recorder, assert_nowhere
from tests.acceptance.test_health import FAST_PROBES, log_of, status_of, until_healthy
from tests.acceptance.test_orchestration import containers_of
from tests.conftest import AUTH
from tests.support.api import all_events
from tests.support.docker_cli import docker_cli, inspect_raw
from tests.support.images import ensure_commandless_image
from tests.support.registry import Registry, moved_variant, remove_pulled
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker


@pytest.fixture
async def pushed(registry: Registry, mcp_image: str, docker: DockerAdapter) -> AsyncIterator[str]:
    """The MCP test image in the registry under a fresh name, and not under it on this host."""
    reference = await registry.push(mcp_image, f"dtma-test/mcp-{secrets.token_hex(4)}", "v1")
    assert not await docker.image_exists(reference)
    yield reference
    await remove_pulled(registry.address)


def deploy_body(server_id: str, image: str, **extra: Any) -> dict[str, Any]:
    spec = {"id": server_id, "image": image, "healthCheck": FAST_PROBES, **extra}
    return {"groupId": server_id, "mcpServers": [spec]}


async def store_credentials(service: Any, registry: Registry, password: str) -> None:
    body = {"server": registry.address, "username": registry.username, "password": password}
    response = await service.post("/registries", json=body, headers=AUTH)
    assert response.status == 202, await response.text()


async def deploy(service: Any, server_id: str, image: str, **extra: Any) -> int:
    response = await service.post(
        "/mcp-servers/deploy", json=deploy_body(server_id, image, **extra), headers=AUTH
    )
    assert response.status == 202, await response.text()
    position: int = (await response.json())["position"]
    return position


async def of_type(service: Any, server_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in await log_of(service, server_id) if e["type"] == kind]


async def until_pull_failed(service: Any, server_id: str, after: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        status = await status_of(service, server_id, after)
        return status if status["status"] == "failed" else None

    return await wait_until(probe, 60)


async def until_moved(service: Any, server_id: str, after: int, first: str) -> str:
    """The new digest, once a replica of the new generation runs it."""

    async def probe() -> str | None:
        status = await status_of(service, server_id, after)
        digest = status["imageDigest"]
        moved = digest not in (None, first) and status["healthyReplicas"] == 1
        return str(digest) if moved else None

    return await wait_until(probe, 60)


async def pull_facts(service: Any, server_id: str) -> list[str]:
    return [
        e["type"] for e in await log_of(service, server_id) if e["type"].startswith("ImagePull")
    ]


async def until_generation(
    service: Any, docker: DockerAdapter, owner: dict[str, str], server_id: str, position: int
) -> ContainerInfo:
    """The server's one container, once it is of the generation begun at `position` and
    healthy."""

    async def probe() -> ContainerInfo | None:
        status = await status_of(service, server_id, position)
        found = await containers_of(docker, owner, server_id)
        current = len(found) == 1 and found[0].labels.get("dtma.generation") == str(position)
        return found[0] if current and status["healthyReplicas"] == 1 else None

    return await wait_until(probe, 60)


async def test_a_private_image_runs_with_stored_credentials_that_go_nowhere_else(
    service: Any,
    registry: Registry,
    pushed: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder(service)
    status, _ = await recorder.call(
        "POST",
        "/registries",
        {"server": registry.address, "username": registry.username, "password": registry.password},
    )
    assert status == 202
    position = await deploy(service, "private", pushed)
    healthy = await until_healthy(service, "private", position)

    assert await pull_facts(service, "private") == ["ImagePullStarted", "ImagePulled"]
    pulled = await of_type(service, "private", "ImagePulled")
    assert len(pulled) == 1 and pulled[0]["data"]["pulled"] is True
    digest = pulled[0]["data"]["digest"]
    assert digest.startswith("sha256:") and healthy["imageDigest"] == digest
    [container] = await containers_of(docker, owner_labels, "private")
    assert container.image == f"{pushed.rsplit(':', 1)[0]}@{digest}"

    status, listed = await recorder.call("GET", "/registries")
    assert status == 200
    assert listed == [
        {
            "server": registry.address,
            "username": registry.username,
            "storedAt": listed[0]["storedAt"],
        }
    ]
    assert_nowhere([registry.password], recorder, tmp_path, caplog)
    inspected = json.dumps(await inspect_raw("container", container.id))
    assert registry.password not in inspected

    status, _ = await recorder.call("DELETE", f"/registries/{registry.address}")
    assert status == 202
    status, listed = await recorder.call("GET", "/registries")
    assert listed == []


async def test_a_wrong_password_fails_the_pull_not_the_container_and_is_retried(
    service: Any, registry: Registry, pushed: str
) -> None:
    await store_credentials(service, registry, "not-" + registry.password)
    position = await deploy(service, "denied", pushed)
    failed = await until_pull_failed(service, "denied", position)

    assert "unauthorized" in failed["reason"] or "authentication" in failed["reason"]
    assert registry.password not in failed["reason"]
    assert failed["circuitState"] == "closed" and failed["instances"] == []
    assert await of_type(service, "denied", "ContainerFailedToStart") == []
    report = await (await service.get("/health/comprehensive", headers=AUTH)).json()
    actions = [a["action"] for a in report["recommendedActions"] if a["mcpServerId"] == "denied"]
    assert "check_image_or_registry_credentials" in actions

    await store_credentials(service, registry, registry.password)  # retried with backoff
    healthy = await until_healthy(service, "denied", position)
    assert healthy["status"] == "running" and healthy["reason"] is None


async def test_never_does_not_pull_a_missing_image(
    service: Any, registry: Registry, pushed: str, docker: DockerAdapter
) -> None:
    await store_credentials(service, registry, registry.password)
    position = await deploy(service, "never", pushed, imagePullPolicy="Never")
    failed = await until_pull_failed(service, "never", position)

    assert "Never" in failed["reason"]
    assert not await docker.image_exists(pushed)


async def test_the_pinned_digest_outlives_a_moved_tag_and_a_restart_but_always_moves(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    registry: Registry,
    pushed: str,
    mcp_image: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
) -> None:
    settings = service_settings()
    service = await aiohttp_client(create_app(settings))
    await store_credentials(service, registry, registry.password)
    position = await deploy(service, "pinned", pushed)
    first = (await until_healthy(service, "pinned", position))["imageDigest"]
    await service.close()  # DTMA stops; the tag moves on the registry meanwhile

    repository, tag = pushed.rsplit(":", 1)
    variant = await moved_variant(mcp_image, secrets.token_hex(4))
    await registry.push(variant, repository.split("/", 1)[1], tag)

    service = await aiohttp_client(create_app(settings))
    try:
        body = {"mcpServerId": "pinned", "replicas": 2}  # the same generation, one more
        response = await service.put("/mcp-servers/scale", json=body, headers=AUTH)
        assert response.status == 202, await response.text()
        position = (await response.json())["position"]
        healthy = await until_healthy(service, "pinned", position, replicas=2)
        assert healthy["imageDigest"] == first
        images = {c.image for c in await containers_of(docker, owner_labels, "pinned")}
        assert images == {f"{repository}@{first}"}

        position = await deploy(service, "pinned", pushed, imagePullPolicy="Always")
        moved = await until_moved(service, "pinned", position, first)
        [container] = await containers_of(docker, owner_labels, "pinned")
        assert container.image == f"{repository}@{moved}"
        pins = [e["data"]["digest"] for e in await of_type(service, "pinned", "ImagePulled")]
        assert pins == [first, moved]
    finally:
        await service.close()
        await sweep(docker, owner_labels)


async def test_a_group_restart_runs_the_pinned_digest_and_only_a_redeploy_moves_it(
    service: Any,
    registry: Registry,
    pushed: str,
    mcp_image: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
) -> None:
    await store_credentials(service, registry, registry.password)
    position = await deploy(service, "kept", pushed)
    first = (await until_healthy(service, "kept", position))["imageDigest"]
    repository, tag = pushed.rsplit(":", 1)
    variant = await moved_variant(mcp_image, secrets.token_hex(4))
    await registry.push(variant, repository.split("/", 1)[1], tag)  # the tag leaves this host

    response = await service.put("/container-groups/kept/restart", headers=AUTH)
    assert response.status == 202, await response.text()
    restarted = (await response.json())["position"]
    container = await until_generation(service, docker, owner_labels, "kept", restarted)
    assert container.image == f"{repository}@{first}"
    assert (await status_of(service, "kept", restarted))["imageDigest"] == first
    # the pinned image was here: nothing pulled, so no pull began
    assert await pull_facts(service, "kept") == ["ImagePullStarted", "ImagePulled"]

    position = await deploy(service, "kept", pushed)  # the very same spec, declared again
    container = await until_generation(service, docker, owner_labels, "kept", position)
    moved = (await status_of(service, "kept", position))["imageDigest"]
    assert moved not in (None, first) and container.image == f"{repository}@{moved}"
    pins = [e["data"]["digest"] for e in await of_type(service, "kept", "ImagePulled")]
    assert pins == [first, moved]
    assert await pull_facts(service, "kept") == ["ImagePullStarted", "ImagePulled"] * 2


async def test_a_tool_image_is_never_an_image_id_prefix(
    service: Any, mcp_image: str, docker: DockerAdapter
) -> None:
    prefix = str((await docker.inspect_image(mcp_image))["Id"])[7:19]
    body = {
        "dockerImageUrl": prefix,
        "instanceNameOnToolbox": "prefix-tool",
        "accountToolInstanceId": "ati-1",
    }
    response = await service.post("/tools", json=body, headers=AUTH)
    answer = await response.json()
    assert response.status == 404, answer
    assert answer["success"] is False and prefix in answer["error"]
    assert [e["type"] for e in await all_events(service)] == []  # nothing was declared


async def test_a_pull_reports_the_bytes_of_its_layers(
    registry: Registry, mcp_image: str, docker: DockerAdapter
) -> None:
    payload = secrets.token_bytes(8 * 1024 * 1024)  # random: it stays 8 MiB when gzipped
    variant = await moved_variant(mcp_image, secrets.token_hex(4), payload)
    reference = await registry.push(variant, f"dtma-test/layer-{secrets.token_hex(4)}", "v1")
    await docker_cli("image", "rm", variant)  # its new layer leaves this host with it
    seen: list[tuple[int, int | None]] = []
    auth = {"username": registry.username, "password": registry.password}
    try:
        await docker.pull_image(reference, auth, lambda done, total: seen.append((done, total)))
    finally:
        await remove_pulled(registry.address)

    assert seen, "no progress was reported"
    done, total = seen[-1]
    assert total is not None and total >= len(payload)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))


async def test_init_containers_and_legacy_tools_pull_from_the_registry_too(
    service: Any,
    registry: Registry,
    pushed: str,
    busybox: str,
    mcp_image: str,
    docker: DockerAdapter,
) -> None:
    init = await registry.push(busybox, f"dtma-test/init-{secrets.token_hex(4)}", "v1")
    await store_credentials(service, registry, registry.password)
    migrate = {"image": init, "command": ["sh", "-c", "echo migrated"]}
    position = await deploy(service, "with-init", mcp_image, initContainers=[migrate])
    await until_healthy(service, "with-init", position)
    assert await docker.image_exists(init)
    assert [e["type"] for e in await of_type(service, "with-init", "ImagePullFailed")] == []

    body = {
        "dockerImageUrl": pushed,
        "instanceNameOnToolbox": "pulled-tool",
        "accountToolInstanceId": "ati-2",
    }
    response = await service.post("/tools", json=body, headers=AUTH)
    answer = await response.json()
    assert response.status == 201, answer
    assert answer["data"]["image"] == pushed and answer["data"]["state"] == "running"


async def test_a_tool_image_without_a_command_is_a_422_naming_it(
    service: Any, docker: DockerAdapter
) -> None:
    image = await ensure_commandless_image(docker)
    body = {
        "dockerImageUrl": image,
        "instanceNameOnToolbox": "no-command",
        "accountToolInstanceId": "ati-3",
    }
    response = await service.post("/tools", json=body, headers=AUTH)
    answer = await response.json()
    assert response.status == 422, answer
    assert image in answer["error"] and "no command" in answer["error"]
