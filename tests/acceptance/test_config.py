"""Configuration end to end: templates, validated and versioned configurations written into
running replicas on a real Docker engine without a restart (told with their reload signal), into
new replicas before they start, and rolled back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from projections import events
from service.api.keys import docker_key, runner_key, store_key
from service.app import create_app
from service.config.applier import ConfigApplier
from service.docker.adapter import DockerAdapter
from service.docker.files import CONFIG_PATH, rendered_config
from service.settings import Settings
from tests.acceptance.conftest import sweep
from tests.acceptance.test_health import (
    FAST_PROBES,
    assert_live_state_equals_a_fold_from_zero,
    log_of,
    until_healthy,
)
from tests.acceptance.test_orchestration import containers_of, until_running
from tests.conftest import AUTH
from tests.service.health.test_probes import logs_of
from tests.support.docker_cli import read_file
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

SERVER = "cfg"
SCHEMA = {
    "type": "object",
    "properties": {
        "logLevel": {"enum": ["debug", "info", "warn"]},
        "limits": {
            "type": "object",
            "properties": {"maxTokens": {"type": "integer", "maximum": 8192}},
        },
        "endpoint": {"type": "string"},
    },
    "required": ["endpoint"],
    "additionalProperties": False,
}
TEMPLATE = {
    "id": "search",
    "schema": SCHEMA,
    "defaults": {"logLevel": "info", "limits": {"maxTokens": 1024}},
    "environments": {
        "production": {"logLevel": "warn"},
        "staging": {"logLevel": "debug"},
    },
}


@pytest.fixture
async def production(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    docker: DockerAdapter,
    owner_labels: dict[str, str],
) -> AsyncIterator[Any]:
    """The service with DTMA_ENVIRONMENT=production."""
    client = await aiohttp_client(create_app(service_settings(environment="production")))
    try:
        yield client
    finally:
        await client.close()
        await sweep(docker, owner_labels)


async def call(service: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = await service.request(method, path, json=body, headers=AUTH)
    return response.status, await response.json()


async def config_of(service: Any, after: int = 0) -> dict[str, Any]:
    status, answer = await call(service, "GET", f"/mcp-servers/{SERVER}/config?minPosition={after}")
    assert status == 200, answer
    return dict(answer)


async def until_applied(service: Any, version: int, replicas: int) -> dict[str, Any]:
    """Until the replicas' containers (that many) all hold `version`."""

    async def everywhere() -> dict[str, Any] | None:
        answer = await config_of(service)
        held = [a["version"] for a in answer["applied"]]
        return answer if held == [version] * replicas else None

    return await wait_until(everywhere, 60)


def digest(configuration: dict[str, Any]) -> str:
    return hashlib.sha256(rendered_config(configuration)).hexdigest()


async def files_in(docker: DockerAdapter, owner: dict[str, str]) -> list[Any]:
    found = []
    for container in await containers_of(docker, owner, SERVER):
        content = await read_file(docker, container.id, CONFIG_PATH)
        found.append(json.loads(content) if content is not None else None)
    return found


async def until_logged(container_id: str, line: str) -> None:
    async def logged() -> bool:
        return line in await logs_of(container_id)

    await wait_until(logged, 30)


async def test_a_configuration_reaches_running_replicas_without_a_restart_and_new_ones_at_start(
    production: Any, mcp_image: str, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    spec = {
        "id": SERVER,
        "image": mcp_image,
        "replicas": 2,
        "healthCheck": FAST_PROBES,
        "reloadSignal": "SIGHUP",
    }
    status, deployed = await call(
        production, "POST", "/mcp-servers/deploy", {"groupId": SERVER, "mcpServers": [spec]}
    )
    assert status == 202, deployed
    await until_healthy(production, SERVER, deployed["position"], replicas=2)
    before = {c.id: c.started_at for c in await containers_of(docker, owner_labels, SERVER)}
    never = await config_of(production)
    assert (never["version"], never["config"], never["history"]) == (0, {}, [])

    status, defined = await call(production, "POST", "/config-templates", TEMPLATE)
    assert status == 201, defined
    assert await call(production, "POST", "/config-templates", TEMPLATE) == (201, defined)
    changed = {**TEMPLATE, "defaults": {}}
    status, refused = await call(production, "POST", "/config-templates", changed)
    assert (status, refused["error"]["code"]) == (409, "id_in_use")

    bad = {"templateId": "search", "config": {"limits": {"maxTokens": 99999}, "colour": "red"}}
    status, refused = await call(production, "PUT", f"/mcp-servers/{SERVER}/config", bad)
    assert status == 422, refused
    assert [(d["field"], d["pointer"]) for d in refused["error"]["details"]] == [
        ("config", ""),  # endpoint missing
        ("config", ""),  # colour not allowed
        ("config.limits.maxTokens", "/limits/maxTokens"),
    ]
    status, page = await call(production, "GET", f"/events?stream=config-{SERVER}")
    assert page["events"] == []  # nothing appended

    good = {"templateId": "search", "config": {"endpoint": "https://one.example"}}
    status, accepted = await call(production, "PUT", f"/mcp-servers/{SERVER}/config", good)
    assert status == 202 and accepted["version"] == 1, accepted
    expected = {
        "endpoint": "https://one.example",
        "logLevel": "warn",
        "limits": {"maxTokens": 1024},
    }
    current = await until_applied(production, 1, replicas=2)
    assert (current["config"], current["environment"]) == (expected, "production")
    assert await files_in(docker, owner_labels) == [expected, expected]
    for container_id in before:
        await until_logged(container_id, f"config reloaded: {digest(expected)}")
    after = {c.id: c.started_at for c in await containers_of(docker, owner_labels, SERVER)}
    assert after == before  # the same containers, never restarted
    started = [
        e
        for e in await log_of(production, SERVER)
        if e["type"] == "ContainerStarted" and e["position"] > accepted["position"]
    ]
    assert started == []
    causes = {
        e["metadata"].get("causation_id")
        for e in await log_of(production, SERVER)
        if e["type"] == "ConfigApplied"
    }
    assert causes == {str(accepted["position"])}  # each write names the version it wrote

    position = await scaled_to_three(production)
    third = (await containers_of(docker, owner_labels, SERVER))[2]
    assert third.id not in before
    await until_logged(third.id, f"config at start: {digest(expected)}")
    log = [e for e in await log_of(production, SERVER) if e["position"] > position]
    kinds = [e["type"] for e in log if e["data"].get("container_id") == third.id]
    assert kinds.index("ConfigApplied") < kinds.index("ContainerStarted")


async def scaled_to_three(service: Any) -> int:
    body = {"mcpServerId": SERVER, "replicas": 3}
    status, answer = await call(service, "PUT", "/mcp-servers/scale", body)
    assert status == 202, answer
    await until_running(service, SERVER, 3, answer["position"])
    await until_applied(service, 1, replicas=3)
    return int(answer["position"])


async def test_a_rollback_makes_an_old_configuration_current_again_as_a_new_version(
    service: Any, mcp_image: str, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    spec = {"id": SERVER, "image": mcp_image, "replicas": 2, "healthCheck": FAST_PROBES}
    status, deployed = await call(
        service, "POST", "/mcp-servers/deploy", {"groupId": SERVER, "mcpServers": [spec]}
    )
    assert status == 202, deployed
    await until_healthy(service, SERVER, deployed["position"], replicas=2)
    path = f"/mcp-servers/{SERVER}/config"
    assert (await call(service, "GET", "/mcp-servers/nobody/config"))[0] == 404
    assert (await call(service, "PUT", "/mcp-servers/nobody/config", {"config": {}}))[0] == 404

    first, second = {"feature": {"on": True}, "n": 1}, {"feature": {"on": False}, "n": 2}
    for number, configuration in enumerate((first, second), start=1):
        status, accepted = await call(service, "PUT", path, {"config": configuration})
        assert (status, accepted["version"]) == (202, number)
    again = await call(service, "PUT", path, {"config": second})
    assert again == (202, accepted)  # the same configuration again: no new version
    await until_applied(service, 2, replicas=2)
    assert await files_in(docker, owner_labels) == [second, second]

    status, refused = await call(service, "POST", f"{path}/rollback", {"version": 7})
    assert (status, refused["error"]["code"]) == (422, "unknown_config_version")
    status, rolled = await call(service, "POST", f"{path}/rollback", {"version": 1})
    assert (status, rolled["version"]) == (202, 3), rolled

    current = await until_applied(service, 3, replicas=2)
    assert await files_in(docker, owner_labels) == [first, first]
    assert (current["config"], current["rolledBackFrom"], current["environment"]) == (
        first,
        1,
        None,  # no DTMA_ENVIRONMENT, and no template to take overrides from
    )
    assert [(h["version"], h["rolledBackFrom"]) for h in current["history"]] == [
        (1, None),
        (2, None),
        (3, 1),
    ]
    status, page = await call(service, "GET", f"/events?stream=config-{SERVER}")
    assert [e["data"]["rolled_back_from"] for e in page["events"]] == [None, None, 1]
    assert {e["type"] for e in page["events"]} == {"ServerConfigured"}
    await assert_live_state_equals_a_fold_from_zero(service)

    # A restarted DTMA knows only the log: a fresh applier finds every container up to date.
    written = [e for e in await log_of(service, SERVER) if e["type"] == "ConfigApplied"]
    app = service.app
    fresh = ConfigApplier(app[store_key], app[runner_key], app[docker_key], events.CATALOGUE)
    await fresh.apply_once()
    assert [e for e in await log_of(service, SERVER) if e["type"] == "ConfigApplied"] == written


async def test_templates_are_checked_and_read_back_and_bad_bodies_refused(service: Any) -> None:
    bad = {"id": "broken", "schema": {"type": "objekt", "minProperties": -1}, "defaults": {}}
    status, refused = await call(service, "POST", "/config-templates", bad)
    assert (status, refused["error"]["code"]) == (422, "invalid_schema")
    assert sorted(d["field"] for d in refused["error"]["details"]) == [
        "schema.minProperties",
        "schema.type",
    ]
    status, refused = await call(service, "POST", "/config-templates", {**TEMPLATE, "extra": 1})
    assert (status, refused["error"]["details"][0]["field"]) == (422, "extra")
    defaults = {**TEMPLATE, "id": "loud", "defaults": {"logLevel": "loud"}}
    status, refused = await call(service, "POST", "/config-templates", defaults)
    assert status == 422 and refused["error"]["details"][0]["pointer"] == "/logLevel"
    assert (await call(service, "GET", "/config-templates/broken"))[0] == 404

    status, defined = await call(service, "POST", "/config-templates", TEMPLATE)
    assert status == 201
    status, read = await call(
        service, "GET", f"/config-templates/search?minPosition={defined['position']}"
    )
    assert status == 200
    assert {k: read[k] for k in ("id", "schema", "defaults", "environments")} == TEMPLATE
    assert read["position"] == defined["position"]
    status, refused = await call(service, "PUT", "/mcp-servers/nobody/config", {"config": []})
    assert status == 422  # a configuration is a JSON object
