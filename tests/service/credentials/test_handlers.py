"""Credential commands over HTTP, on SQLite and PostgreSQL: concurrent ones on one server go in
turn through the one decide-and-append path, as every other command does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import AUTH

CLIENTS = 4


@pytest.fixture
async def service(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], database_url: str
) -> TestClient:  # type: ignore[type-arg]
    """The service on each database, with one server of no replicas (nothing for Docker)."""
    client: TestClient = await aiohttp_client(  # type: ignore[type-arg]
        create_app(make_settings(database_url=database_url))
    )
    body = {"groupId": "g", "mcpServers": [{"id": "s", "image": "example/mcp:1", "replicas": 0}]}
    deployed = await client.post("/mcp-servers/deploy", json=body, headers=AUTH)
    assert deployed.status == 202, await deployed.text()
    return client


async def inject(client: TestClient, agent: str, value: str) -> tuple[int, dict[str, Any]]:  # type: ignore[type-arg]
    body = {
        "mcpServerId": "s",
        "agentId": agent,
        "credentials": {"apiKeys": [{"name": "API_KEY", "value": value}]},
    }
    response = await client.post("/credentials/inject", json=body, headers=AUTH)
    answer: dict[str, Any] = await response.json()
    return response.status, answer


async def test_concurrent_injects_for_one_server_all_land_in_turn(
    service: TestClient,  # type: ignore[type-arg]
) -> None:
    answers = await asyncio.gather(*(inject(service, "a", f"v{n}") for n in range(CLIENTS)))
    assert [status for status, _ in answers] == [202] * CLIENTS, answers
    assert sorted(answer["version"] for _, answer in answers) == list(range(1, CLIENTS + 1))
    last = max(answer["position"] for _, answer in answers)
    read = await service.get(f"/credentials/status?minPosition={last}", headers=AUTH)
    listed = await read.json()
    assert [(c["mcpServerId"], c["version"]) for c in listed] == [("s", CLIENTS)]


async def test_concurrent_injects_for_two_agents_bind_the_first(
    service: TestClient,  # type: ignore[type-arg]
) -> None:
    """The second is refused because the first bound the credentials, not for racing it."""
    answers = await asyncio.gather(inject(service, "a", "va"), inject(service, "b", "vb"))
    (accepted, bound), (refused, error) = sorted(answers, key=lambda answer: answer[0])
    assert (accepted, bound["version"]) == (202, 1)
    assert refused == 409 and error["error"]["code"] == "bound_to_another_agent"


async def test_concurrent_revokes_revoke_once(
    service: TestClient,  # type: ignore[type-arg]
) -> None:
    assert (await inject(service, "a", "v"))[0] == 202
    responses = await asyncio.gather(
        *(service.delete("/credentials/s", headers=AUTH) for _ in range(2))
    )
    assert sorted(r.status for r in responses) == [202, 404]
