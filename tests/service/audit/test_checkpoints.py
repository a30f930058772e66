"""The audit routes and the checkpoint signer in the running app (a SQLite file, in process):
checkpoints signed every N events with the key `GET /audit/public-key` shows, and
`GET /audit/verify` naming what was tampered."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import AUTH
from tests.support.waiting import wait_until

Client = TestClient[web.Request, web.Application]
EVERY = 2


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    return tmp_path / "audited.db"


@pytest.fixture
async def audited(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    database_file: Path,
) -> Client:
    """The service signing a checkpoint every two events."""
    settings = make_settings(database_url=f"sqlite:///{database_file}", checkpoint_every=EVERY)
    client: Client = await aiohttp_client(create_app(settings))
    return client


async def configure(client: Client, threshold: int) -> int:
    response = await client.post(
        "/health/circuit-breaker", json={"failureThreshold": threshold}, headers=AUTH
    )
    assert response.status == 200, await response.text()
    position: int = (await response.json())["position"]
    return position


async def verdict(client: Client) -> dict[str, Any]:
    response = await client.get("/audit/verify", headers=AUTH)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def checkpointed(client: Client, count: int) -> dict[str, Any]:
    """The verdict, once `count` checkpoints are signed."""

    async def probe() -> dict[str, Any] | None:
        body = await verdict(client)
        return body if body["checkpoints"]["checked"] >= count else None

    return await wait_until(probe, 10.0)


async def test_signs_a_checkpoint_every_n_events_and_verifies_them(audited: Client) -> None:
    for threshold in range(1, 6):
        await configure(audited, threshold)

    report = await checkpointed(audited, 2)

    assert report["ok"] is True and report["checked"] == 5
    assert "firstBadPosition" not in report
    key = await (await audited.get("/audit/public-key", headers=AUTH)).json()
    assert report["checkpoints"] == {
        "checked": 2,
        "lastVerifiedPosition": 4,
        "keyIds": [key["keyId"]],
        "keysFrom": "service",
    }


async def test_names_a_tampered_event_and_a_tampered_checkpoint(
    audited: Client, database_file: Path
) -> None:
    for threshold in range(1, 6):
        await configure(audited, threshold)
    await checkpointed(audited, 2)

    tamper(database_file, "UPDATE events SET data = replace(data, '3', '7') WHERE position = 3")
    tamper(
        database_file, "UPDATE signed_checkpoints SET head_hash = ? WHERE position = 2", "0" * 64
    )
    report = await verdict(audited)

    assert report["ok"] is False
    assert report["firstBadPosition"] == 3
    assert report["checkpoints"]["firstBadCheckpoint"] == 2
    assert report["checkpoints"]["lastVerifiedPosition"] == 0


async def test_checks_the_log_against_heads_the_auditor_recorded(audited: Client) -> None:
    for threshold in range(1, 4):
        await configure(audited, threshold)
    recorded = await verdict(audited)
    kept = f"{recorded['headPosition']}:{recorded['headHash']}"
    forged = f"{recorded['headPosition']}:{'0' * 64}"
    beyond = f"{recorded['headPosition'] + 100}:{recorded['headHash']}"
    await configure(audited, 9)

    response = await audited.get(
        "/audit/verify",
        params=[("against", kept), ("against", forged), ("against", beyond)],
        headers=AUTH,
    )

    report = await response.json()
    assert response.status == 200
    assert report["ok"] is False and "firstBadPosition" not in report
    assert [(h["position"], h["ok"]) for h in report["knownHeads"]] == [
        (recorded["headPosition"], True),
        (recorded["headPosition"], False),
        (recorded["headPosition"] + 100, False),
    ]
    assert "ends at position" in report["knownHeads"][2]["problem"]
    alone = await audited.get("/audit/verify", params={"against": kept}, headers=AUTH)
    assert (await alone.json())["ok"] is True


@pytest.mark.parametrize("given", ["12", "x:" + "0" * 64, "3:abc", "3:" + "g" * 64])
async def test_a_malformed_known_head_is_422(audited: Client, given: str) -> None:
    response = await audited.get("/audit/verify", params={"against": given}, headers=AUTH)

    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "validation_failed" and error["details"][0]["field"] == "against"


async def test_the_public_key_is_ed25519_and_needs_the_token(audited: Client) -> None:
    answer = await audited.get("/audit/public-key", headers=AUTH)
    refused = await audited.get("/audit/public-key")

    assert (answer.status, refused.status) == (200, 401)
    key = await answer.json()
    assert key["algorithm"] == "Ed25519" and len(bytes.fromhex(key["publicKeyHex"])) == 32


def tamper(database: Path, sql: str, *parameters: object) -> None:
    with sqlite3.connect(database) as connection:
        assert connection.execute(sql, parameters).rowcount == 1
    connection.close()
