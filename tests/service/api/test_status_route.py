"""GET /mcp-servers/status: every server, at the position it was rendered at; a command moves
it on (the body rendered once per position is never served stale)."""

from __future__ import annotations

from typing import Any

from tests.conftest import AUTH

SPEC = {"groupId": "st", "mcpServers": [{"id": "st-a", "image": "none:1", "replicas": 0}]}


async def statuses(client: Any, after: int = 0) -> dict[str, Any]:
    response = await client.get(f"/mcp-servers/status?minPosition={after}", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    answer: dict[str, Any] = await response.json()
    return answer


async def test_the_status_follows_the_log(client: Any) -> None:
    assert (await statuses(client))["mcpServers"] == []

    deployed = await client.post("/mcp-servers/deploy", json=SPEC, headers=AUTH)
    assert deployed.status == 202
    first = await statuses(client, (await deployed.json())["position"])
    assert [(s["id"], s["desiredReplicas"]) for s in first["mcpServers"]] == [("st-a", 0)]
    assert await statuses(client, first["position"]) == first

    scaled = await client.put(
        "/mcp-servers/scale", json={"mcpServerId": "st-a", "replicas": 2}, headers=AUTH
    )
    assert scaled.status == 202
    second = await statuses(client, (await scaled.json())["position"])
    assert second["position"] > first["position"]
    assert [(s["id"], s["desiredReplicas"]) for s in second["mcpServers"]] == [("st-a", 2)]
