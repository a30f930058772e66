"""Helpers for the HTTP API's tests: the contract's error shape, and the circuit-breaker
command and event log the route tests use as their simplest command and read."""

from __future__ import annotations

from typing import Any, TypeAlias

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from tests.conftest import AUTH

Client: TypeAlias = TestClient[web.Request, web.Application]

BREAKER = "/health/circuit-breaker"


async def error_of(response: ClientResponse, status: int) -> dict[str, Any]:
    """Asserts the contract's error shape and status; returns the `error` object."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    assert "Traceback" not in text
    body = await response.json()
    assert list(body) == ["error"]
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str) and error["code"].islower()
    assert " " not in error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    return error


def fields_of(error: dict[str, Any]) -> set[str]:
    return {detail["field"] for detail in error["details"]}


async def configure(client: Client, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await client.post(BREAKER, json=body, headers={**AUTH, **headers})
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def all_events(client: Client, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"/events?limit=1000{query}", headers=AUTH)
    assert response.status == 200
    events: list[dict[str, Any]] = (await response.json())["events"]
    return events
