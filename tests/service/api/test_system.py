"""The system routes: /healthz and the legacy plain-text /health, both without a token."""

from __future__ import annotations

from tests.support.api import Client


async def test_healthz_needs_no_token(client: Client) -> None:
    response = await client.get("/healthz")

    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_legacy_health_answers_plain_text_ok_without_a_token(client: Client) -> None:
    response = await client.get("/health")

    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.text() == "OK"
