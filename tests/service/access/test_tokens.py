"""Scoped tokens over real HTTP on a SQLite file: each role reaches what it may and gets 403
`forbidden` (naming the role needed) elsewhere; tokens come from DTMA_AUTH_TOKEN, a tokens file
refused if others may read it, and the database, where a revoked token stops working."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.access import token_store, tokens
from service.api.keys import store_key
from service.app import create_app
from service.settings import Settings, SettingsError
from tests.conftest import AUTH
from tests.support.api import BREAKER, error_of
from tests.support.waiting import wait_until

Client: TypeAlias = TestClient[web.Request, web.Application]
ROLES = ("metrics", "reader", "operator", "admin")
SECRETS = {role: f"{role}-" + secrets.token_hex(16) for role in ROLES}
SECRETS["agent"] = "agent-" + secrets.token_hex(16)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tokens_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "tokens"
    lines = [f"{role}-token {role} {SECRETS[role]}" for role in ROLES]
    lines.append(f"# the gateway's\nagent-token agent {SECRETS['agent']} agent-7")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
async def roles_client(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Path
) -> Client:
    settings = make_settings(tokens_file=str(tokens_file(tmp_path)))
    made: Client = await aiohttp_client(create_app(settings))
    return made


# What each role may reach, one route of each kind: (method, path, the least role it needs).
ROUTES = [
    ("GET", "/metrics", "metrics"),
    ("GET", "/events", "reader"),
    ("GET", "/audit/verify", "reader"),
    ("GET", "/mcp-servers/status", "reader"),
    ("POST", BREAKER, "operator"),
    ("GET", "/stdio/search/1/mcp", "operator"),  # a stdio replica's stream: an operator's only
    ("POST", "/credentials/inject", "admin"),
    ("DELETE", "/credentials/search", "admin"),
]


@pytest.mark.parametrize("role", [*ROLES, "agent"])
async def test_each_role_reaches_its_routes_and_gets_403_naming_the_role_elsewhere(
    roles_client: Client, role: str
) -> None:
    for method, path, needed in ROUTES:
        body = {"failureThreshold": 3} if path == BREAKER else None
        response = await roles_client.request(
            method, path, json=body, headers=bearer(SECRETS[role])
        )
        may = role != "agent" and ROLES.index(role) >= ROLES.index(needed)
        if may:
            assert response.status not in (401, 403), (method, path, await response.text())
        else:
            error = await error_of(response, 403)
            assert error["code"] == "forbidden"
            assert needed in error["message"], error
            assert error["details"] == [{"needed": needed, "role": role}]


async def test_the_actor_of_a_command_is_the_token_name(roles_client: Client) -> None:
    configured = await roles_client.post(
        BREAKER, json={"failureThreshold": 3}, headers=bearer(SECRETS["operator"])
    )
    assert configured.status == 200, await configured.text()

    answer = await (await roles_client.get("/events", headers=bearer(SECRETS["reader"]))).json()

    assert [e["metadata"]["actor"] for e in answer["events"]] == ["token:operator-token"]


@pytest.mark.parametrize("path", ["/healthz", "/health"])
async def test_head_of_a_public_route_is_public(client: Client, path: str) -> None:
    assert (await client.head(path)).status == 200
    assert (await client.head("/events")).status == 401


async def test_dtma_auth_token_is_an_admin_token(client: Client) -> None:
    response = await client.delete("/credentials/search", headers=AUTH)

    assert response.status not in (401, 403), await response.text()


def test_a_token_shorter_than_32_characters_is_refused_at_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match="32"):
        create_app(make_settings(auth_token="x" * 31))
    short = tmp_path / "short"
    short.write_text("ci reader " + "y" * 31 + "\n")
    short.chmod(0o600)
    with pytest.raises(SettingsError, match="32"):
        create_app(make_settings(tokens_file=str(short)))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_tokens_file_others_may_read_is_refused_at_start(
    make_settings: Callable[..., Settings], tmp_path: Path, mode: int
) -> None:
    path = tokens_file(tmp_path, mode)

    with pytest.raises(SettingsError, match="chmod 0600"):
        create_app(make_settings(tokens_file=str(path)))


def test_a_tokens_file_may_hold_hashes_only(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"ci metrics sha256:{tokens.digest(SECRETS['metrics'])}\n")
    path.chmod(0o600)

    [token] = tokens.read_file(path)

    assert (token.name, token.role, token.sha256) == (
        "ci",
        "metrics",
        tokens.digest(SECRETS["metrics"]),
    )


async def test_a_stored_token_works_without_a_restart_and_a_revoked_one_stops(
    client: Client,
) -> None:
    engine = client.app[store_key].engine
    secret = tokens.new_token()
    await token_store.add(engine, tokens.Token("scraper", "metrics", tokens.digest(secret)))

    async def answers(path: str, status: int) -> bool:
        return (await client.get(path, headers=bearer(secret))).status == status

    assert await wait_until(lambda: answers("/metrics", 200), token_store.MISS_REFRESH_S + 5)
    assert await answers("/events", 403)

    assert await token_store.revoke(engine, "scraper")

    assert await wait_until(lambda: answers("/metrics", 401), token_store.REFRESH_S + 5)


async def test_the_openapi_document_names_each_routes_role(client: Client) -> None:
    document = await (await client.get("/openapi.json", headers=AUTH)).json()
    paths = document["paths"]

    assert paths["/metrics"]["get"]["x-dtma-role"] == "metrics"
    assert paths["/events"]["get"]["x-dtma-role"] == "reader"
    assert paths[BREAKER]["post"]["x-dtma-role"] == "operator"
    assert paths["/credentials/inject"]["post"]["x-dtma-role"] == "admin"
    assert "403" in paths["/credentials/inject"]["post"]["responses"]
    assert "x-dtma-role" not in paths["/healthz"]["get"]


async def deploy_as(client: Client, role: str, server: dict[str, Any]) -> int:
    body = {"groupId": "leaky", "mcpServers": [{"id": "leaky", "replicas": 0, **server}]}
    response = await client.post("/mcp-servers/deploy", json=body, headers=bearer(SECRETS[role]))
    return response.status


@pytest.mark.parametrize(
    "change",
    [
        {"image": "example.test/other:2"},
        {"command": ["sh", "-c", "cat /run/secrets/*"]},
        {"initContainers": [{"image": "example.test/init:1"}]},
    ],
)
async def test_only_admin_changes_the_code_of_a_server_holding_credentials(
    roles_client: Client, change: dict[str, Any]
) -> None:
    server = {"image": "example.test/mcp:1"}
    assert await deploy_as(roles_client, "operator", server) == 202
    assert await deploy_as(roles_client, "operator", {**server, **change}) == 202  # no secrets yet
    assert await deploy_as(roles_client, "operator", server) == 202
    injected = await roles_client.post(
        "/credentials/inject",
        json={
            "mcpServerId": "leaky",
            "agentId": "agent-7",
            "credentials": {"apiKeys": [{"name": "KEY", "value": "v", "mode": "env"}]},
        },
        headers=bearer(SECRETS["admin"]),
    )
    assert injected.status == 202, await injected.text()

    refused = await roles_client.post(
        "/mcp-servers/deploy",
        json={
            "groupId": "leaky",
            "mcpServers": [{"id": "leaky", "replicas": 0, **server, **change}],
        },
        headers=bearer(SECRETS["operator"]),
    )

    error = await error_of(refused, 403)
    assert "admin" in error["message"] and error["details"][0]["needed"] == "admin"
    assert await deploy_as(roles_client, "operator", {**server, "env": {"A": "1"}}) == 202
    assert await deploy_as(roles_client, "admin", {**server, **change}) == 202
