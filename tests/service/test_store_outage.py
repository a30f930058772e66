"""When the database goes away the API fails closed with 503, and recovers when it is back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from service.app import create_app
from service.settings import Settings
from tests.conftest import AUTH


async def set_reachable(url: str, reachable: bool) -> None:
    parsed = make_url(url)
    admin = await asyncpg.connect(
        parsed.set(database="postgres").render_as_string(hide_password=False)
    )
    try:
        flag = "true" if reachable else "false"
        await admin.execute(f'ALTER DATABASE "{parsed.database}" ALLOW_CONNECTIONS {flag}')
        if not reachable:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                parsed.database,
            )
    finally:
        await admin.close()


@pytest.mark.postgres
async def test_commands_and_reads_answer_503_while_the_database_is_down_then_recover(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], postgres_url: str
) -> None:
    client = await aiohttp_client(create_app(make_settings(database_url=postgres_url)))
    ok = await client.post("/health/circuit-breaker", json={"failureThreshold": 4}, headers=AUTH)
    assert ok.status == 200

    await set_reachable(postgres_url, False)
    try:
        refused = await client.post(
            "/health/circuit-breaker", json={"failureThreshold": 5}, headers=AUTH
        )
        listed = await client.get("/events", headers=AUTH)
        for response in (refused, listed):
            body = await response.json()
            assert response.status == 503
            assert body["error"]["code"] == "store_unavailable"
            assert "Traceback" not in await response.text()
    finally:
        await set_reachable(postgres_url, True)

    again = await client.post("/health/circuit-breaker", json={"failureThreshold": 6}, headers=AUTH)
    assert again.status == 200
    events = await (await client.get("/events", headers=AUTH)).json()
    thresholds = [e["data"]["failure_threshold"] for e in events["events"]]
    assert thresholds == [4, 6]
