"""Who did what and why, from the log alone: a deploy through the API (real Docker, a SQLite
file) leaves events that each name their actor, correlation and cause, and the reconciler's
containers lead back to the command that asked for them."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.docker.adapter import DockerAdapter
from tests.conftest import AUTH, TOKEN
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

Client = TestClient[web.Request, web.Application]
SYSTEM_ACTORS = {"system", "docker", "probe"}


async def all_events(client: Client) -> list[dict[str, Any]]:
    response = await client.get("/events?limit=1000", headers=AUTH)
    assert response.status == 200
    events: list[dict[str, Any]] = (await response.json())["events"]
    return events


def cause_of(event: dict[str, Any], by_position: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Follows causation ids back to the first event that has none: the command."""
    seen = 0
    while (cause := event["metadata"].get("causation_id")) is not None:
        assert cause.isdigit(), f"{event['type']} was caused outside the log: {cause}"
        event = by_position[int(cause)]
        seen += 1
        assert seen < 100, "causation ids loop"
    return event


async def test_every_event_of_a_deploy_names_actor_correlation_and_cause(
    docker: DockerAdapter, mcp_image: str, client: Client
) -> None:
    request_id = "deploy-" + secrets.token_hex(4)
    group = "c" + secrets.token_hex(3)
    body = {"groupId": group, "mcpServers": [{"id": f"{group}-s", "image": mcp_image}]}
    deployed = await client.post(
        "/mcp-servers/deploy?wait=true&timeout=60000",
        json=body,
        headers={**AUTH, "X-Request-ID": request_id},
    )
    assert deployed.status == 200, await deployed.text()

    async def judged() -> list[dict[str, Any]] | None:
        events = await all_events(client)
        return events if any(e["type"] == "ReplicaHealthChanged" for e in events) else None

    events = await wait_until(judged, 30.0)
    by_position = {e["position"]: e for e in events}
    caller = "token:DTMA_AUTH_TOKEN"

    for event in events:
        meta = event["metadata"]
        assert meta["actor"] == caller or meta["actor"] in SYSTEM_ACTORS, event
        assert meta["correlation_id"], event
        if meta["actor"] != caller:
            assert meta["causation_id"] and meta["component"], event
    commands = [e for e in events if e["metadata"]["actor"] == caller]
    assert {"GroupDeclared", "ServerDeclared"} <= {e["type"] for e in commands}
    assert {e["metadata"]["correlation_id"] for e in commands} == {request_id}
    for kind, actor in [("ContainerCreated", "system"), ("ReplicaHealthChanged", "probe")]:
        event = next(e for e in events if e["type"] == kind)
        assert event["metadata"]["actor"] == actor
        assert event["metadata"]["correlation_id"] == request_id
        root = cause_of(event, by_position)
        assert root["metadata"]["actor"] == caller
        assert root["metadata"]["correlation_id"] == request_id
    assert TOKEN not in json.dumps(events)
