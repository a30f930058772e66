"""Credentials end to end: injected into running replicas on a real Docker engine, rotated,
revoked by crypto-shredding — and their bytes nowhere they should not be."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from nacl.public import PublicKey, SealedBox

from eventstore.keyring import KeyDestroyedError
from projections import ALL, credentials, events
from projections.runner import FoldSet, fold_log
from service.api.keys import ring_key, store_key
from service.app import create_app
from service.docker.adapter import DockerAdapter, DockerNotFoundError
from service.settings import Settings
from tests.acceptance.conftest import sweep
from tests.acceptance.test_health import FAST_PROBES, log_of, until_healthy
from tests.acceptance.test_orchestration import containers_of, status_of
from tests.conftest import AUTH
from tests.support.docker_cli import inspect_raw, read_file
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker


class Recorder:
    """Every answer the service gave, so a test can search them for a secret's bytes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.bodies: list[bytes] = []

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = await self.client.request(method, path, json=body, headers=AUTH)
        raw = await response.read()
        self.bodies.append(raw)
        return response.status, (await response.json()) if raw else None


def secret_value() -> str:
    return f"s3cret-{secrets.token_hex(16)}"


async def deploy(
    recorder: Recorder, server_id: str, image: str, replicas: int, **extra: Any
) -> int:
    spec = {"id": server_id, "image": image, "replicas": replicas, "healthCheck": FAST_PROBES}
    status, answer = await recorder.call(
        "POST", "/mcp-servers/deploy", {"groupId": server_id, "mcpServers": [{**spec, **extra}]}
    )
    assert status == 202, answer
    position: int = answer["position"]
    await until_healthy(recorder.client, server_id, position, replicas=replicas)
    return position


async def credential_status(recorder: Recorder, server_id: str) -> dict[str, Any]:
    status, listed = await recorder.call("GET", "/credentials/status")
    assert status == 200
    found: dict[str, Any] = next((c for c in listed if c["mcpServerId"] == server_id), {})
    return found


async def until_status(recorder: Recorder, server_id: str, wanted: str, version: int) -> None:
    seen: dict[str, Any] = {}

    async def reached() -> bool | None:
        seen.update(await credential_status(recorder, server_id))
        return True if (seen.get("status"), seen.get("version")) == (wanted, version) else None

    try:
        await wait_until(reached, 60)
    except TimeoutError as exc:  # what it was instead, for the failure's reader
        raise AssertionError(f"not {wanted} v{version}; last status: {seen}") from exc


async def injected_versions(recorder: Recorder, server_id: str) -> dict[int, dict[str, Any]]:
    """The data of a server's `CredentialsInjected` events in the log, by version."""
    status, page = await recorder.call("GET", f"/events?stream=credentials-{server_id}")
    assert status == 200, page
    return {
        e["data"]["version"]: e["data"]
        for e in page["events"]
        if e["type"] == "CredentialsInjected"
    }


async def files_in(
    docker: DockerAdapter, owner: dict[str, str], server_id: str, name: str
) -> list[bytes | None]:
    return [
        await read_file(docker, c.id, f"/run/secrets/{name}")
        for c in await containers_of(docker, owner, server_id)
    ]


async def test_file_credentials_reach_every_replica_without_a_restart_rotate_and_are_shredded(
    service: Any,
    mcp_image: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder(service)
    first, second = secret_value(), secret_value()
    await deploy(recorder, "files", mcp_image, replicas=2)
    before = {c.id: c.started_at for c in await containers_of(docker, owner_labels, "files")}

    status, answer = await recorder.call(
        "POST",
        "/credentials/inject",
        {
            "mcpServerId": "files",
            "agentId": "agent-7",
            "credentials": {"apiKeys": [{"name": "token.txt", "value": first, "mode": "file"}]},
        },
    )
    assert status == 202 and answer["version"] == 1
    await until_status(recorder, "files", "injected", 1)
    assert await files_in(docker, owner_labels, "files", "token.txt") == [first.encode()] * 2
    after = {c.id: c.started_at for c in await containers_of(docker, owner_labels, "files")}
    assert after == before  # the same containers, never restarted

    status, answer = await recorder.call(
        "PUT",
        "/credentials/rotate",
        {
            "mcpServerId": "files",
            "credentials": {"apiKeys": [{"name": "token.txt", "value": second, "mode": "file"}]},
        },
    )
    assert status == 202 and answer["version"] == 2
    await until_status(recorder, "files", "injected", 2)
    assert await files_in(docker, owner_labels, "files", "token.txt") == [second.encode()] * 2
    listed = await credential_status(recorder, "files")
    assert (listed["agentId"], listed["names"], listed["modes"]) == (
        "agent-7",
        ["token.txt"],
        {"token.txt": "file"},
    )

    log = await log_of(service, "files")
    retired = [e for e in log if e["type"] == "CredentialsRetired"]
    assert [r["data"]["versions"] for r in retired] == [[1]]  # forgotten once 2 was everywhere
    status, answer = await recorder.call("DELETE", "/credentials/files")
    assert status == 202 and answer["versions"] == [2]

    async def gone() -> bool | None:
        contents = await files_in(docker, owner_labels, "files", "token.txt")
        return True if all(not c for c in contents) else None

    await wait_until(gone, 30)
    await until_status(recorder, "files", "revoked", 2)
    ring = service.app[ring_key]
    events_log = await recorder.call("GET", "/events?limit=1000")
    injected = [e for e in events_log[1]["events"] if e["type"] == "CredentialsInjected"]
    assert len(injected) == 2
    for event in injected:
        with pytest.raises(KeyDestroyedError):
            await ring.decrypt(event["data"]["key_id"], event["data"]["secrets"][0]["ciphertext"])
    status, verified = await recorder.call("GET", "/audit/verify")
    assert verified["ok"] is True
    replayed = await fold_log(service.app[store_key], FoldSet(events.CATALOGUE, ALL))
    forgotten = replayed.state(credentials.PROJECTION).of("files").versions
    assert [(v.status, v.forgotten, v.secrets) for v in forgotten.values()] == [
        ("retired", True, ()),
        ("revoked", True, ()),
    ]
    assert any(e["type"] == "CredentialsApplied" for e in log)

    assert_nowhere([first, second], recorder, tmp_path, caplog)
    for container in await containers_of(docker, owner_labels, "files"):
        inspected = json.dumps(await inspect_raw("container", container.id))
        assert first not in inspected and second not in inspected


def assert_nowhere(
    values: list[str], recorder: Recorder, directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not in any answer, not in the service's log output, not in the SQLite file or its WAL;
    and no statement on the data keys (their wrapped bytes) in the log, at any level."""
    stored = b"".join(p.read_bytes() for p in directory.glob("dtma.db*"))
    logged = caplog.text.encode()
    assert b"data_keys" not in logged
    for value in values:
        for encoded in (value.encode(), base64.b64encode(value.encode())):
            assert not any(encoded in body for body in recorder.bodies)
            assert encoded not in logged
            assert encoded not in stored


async def test_a_sealed_value_is_opened_only_by_the_service(
    service: Any, mcp_image: str, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    recorder = Recorder(service)
    await deploy(recorder, "sealed", mcp_image, replicas=1)
    status, key = await recorder.call("GET", "/credentials/public-key")
    assert status == 200
    value = secret_value()
    sealed = SealedBox(PublicKey(base64.b64decode(key["publicKey"]))).encrypt(value.encode())

    status, _ = await recorder.call(
        "POST",
        "/credentials/inject",
        {
            "mcpServerId": "sealed",
            "agentId": "agent-1",
            "credentials": {
                "certificates": [
                    {"name": "client.pem", "pem": {"sealed": base64.b64encode(sealed).decode()}}
                ]
            },
        },
    )

    assert status == 202
    await until_status(recorder, "sealed", "injected", 1)
    assert await files_in(docker, owner_labels, "sealed", "client.pem") == [value.encode()]
    garbage = {"sealed": base64.b64encode(b"x" * 64).decode()}
    status, refused = await recorder.call(
        "POST",
        "/credentials/inject",
        {
            "mcpServerId": "sealed",
            "agentId": "a",
            "credentials": {"apiKeys": [{"name": "K", "value": garbage}]},
        },
    )
    assert status == 422 and refused["error"]["details"][0]["field"].endswith("value")


async def test_names_that_are_paths_are_refused_and_nothing_is_recorded(
    service: Any, mcp_image: str
) -> None:
    recorder = Recorder(service)
    await deploy(recorder, "names", mcp_image, replicas=1)
    for name in ("../etc/passwd", "a/b", "", ".", "x y"):
        status, answer = await recorder.call(
            "POST",
            "/credentials/inject",
            {
                "mcpServerId": "names",
                "agentId": "a",
                "credentials": {"apiKeys": [{"name": name, "value": "v", "mode": "file"}]},
            },
        )
        assert status == 422, (name, answer)
    assert not [e for e in await log_of(service, "names") if e["type"].startswith("Credentials")]
    status, listed = await recorder.call("GET", "/credentials/status")
    assert listed == []


async def test_env_credentials_roll_through_replicas_with_one_always_healthy(
    service: Any, mcp_image: str, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    recorder = Recorder(service)
    await deploy(recorder, "envs", mcp_image, replicas=2)
    value = secret_value()

    status, answer = await recorder.call(
        "POST",
        "/credentials/inject",
        {
            "mcpServerId": "envs",
            "agentId": "a",
            "credentials": {"apiKeys": [{"name": "API_KEY", "value": value}]},
        },
    )
    assert status == 202

    lowest, fewest_running, most_running = 2, 2, 2

    async def rolled() -> bool | None:
        nonlocal lowest, fewest_running, most_running
        server = await status_of(service, "envs")
        lowest = min(lowest, server["healthyReplicas"])
        found = await containers_of(docker, owner_labels, "envs")
        running = sum(c.running for c in found)
        fewest_running, most_running = min(fewest_running, running), max(most_running, running)
        labelled = [c.labels.get("dtma.credentials-version") for c in found]
        # empty until the projections have folded the inject: polled, not waited for
        listed = await credential_status(recorder, "envs")
        done = listed.get("status") == "injected" and listed.get("appliedTo") == [1, 2]
        return True if done and labelled == ["1", "1"] and server["healthyReplicas"] == 2 else None

    await wait_until(rolled, 120)

    assert lowest >= 1  # never all replicas down at once
    # each successor started beside its replica before the old container went
    assert (fewest_running, most_running) == (2, 3)
    for container in await containers_of(docker, owner_labels, "envs"):
        assert container.labels["dtma.credentials-version"] == "1"
        assert f"API_KEY={value}" in json.dumps(await inspect_raw("container", container.id))

    status, _ = await recorder.call("DELETE", "/credentials/envs")
    assert status == 202

    async def dropped() -> bool | None:
        found = await containers_of(docker, owner_labels, "envs")
        server = await status_of(service, "envs")
        fresh = len(found) == 2 and all("dtma.credentials-version" not in c.labels for c in found)
        return True if fresh and server["healthyReplicas"] == 2 else None

    await wait_until(dropped, 120)  # the variables go with the containers that had them
    for container in await containers_of(docker, owner_labels, "envs"):
        assert value not in json.dumps(await inspect_raw("container", container.id))


async def test_a_server_that_requires_credentials_waits_for_them(
    service: Any, mcp_image: str, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    recorder = Recorder(service)
    spec = {
        "id": "needy",
        "image": mcp_image,
        "healthCheck": FAST_PROBES,
        "credentialRequirements": [{"name": "GITHUB_TOKEN", "mode": "env"}],
    }
    status, answer = await recorder.call(
        "POST", "/mcp-servers/deploy", {"groupId": "needy", "mcpServers": [spec]}
    )
    assert status == 202
    deployed = answer["position"]
    pending = await status_of(service, "needy", deployed)
    assert pending["status"] == "pending"
    status, report = await recorder.call("GET", f"/health/comprehensive?minPosition={deployed}")
    actions = [a for a in report["recommendedActions"] if a["mcpServerId"] == "needy"]
    assert actions and actions[0]["action"] == "inject_credentials"
    assert "GITHUB_TOKEN" in actions[0]["reason"]
    assert await containers_of(docker, owner_labels, "needy") == []

    status, _ = await recorder.call(
        "POST",
        "/credentials/inject",
        {
            "mcpServerId": "needy",
            "agentId": "a",
            "credentials": {"apiKeys": [{"name": "GITHUB_TOKEN", "value": secret_value()}]},
        },
    )
    assert status == 202
    await until_healthy(service, "needy", deployed)


async def test_credentials_come_from_the_backend_when_the_body_has_none(
    aiohttp_client: Callable[..., Any],
    aiohttp_server: Callable[..., Any],
    service_settings: Callable[..., Settings],
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    mcp_image: str,
) -> None:
    value = secret_value()
    asked: list[dict[str, Any]] = []

    async def credentials(request: web.Request) -> web.Response:
        asked.append(await request.json())
        return web.json_response({"secrets": {"token.txt": value, "UNSET": None}})

    async def heartbeat(_request: web.Request) -> web.Response:
        return web.json_response({})

    backend_app = web.Application()
    backend_app.router.add_post("/get-agent-tool-credentials", credentials)
    backend_app.router.add_post("/heartbeat", heartbeat)
    backend = await aiohttp_server(backend_app)
    client = await aiohttp_client(
        create_app(
            service_settings(backend_url=str(backend.make_url("")), heartbeat_interval_s=3600)
        )
    )
    try:
        recorder = Recorder(client)
        spec = {
            "id": "fetched",
            "image": mcp_image,
            "healthCheck": FAST_PROBES,
            "credentialRequirements": [{"name": "token.txt", "mode": "file"}],
        }
        status, answer = await recorder.call(
            "POST", "/mcp-servers/deploy", {"groupId": "fetched", "mcpServers": [spec]}
        )
        assert status == 202

        expires = datetime.now(UTC) + timedelta(seconds=3)
        status, answer = await recorder.call(
            "POST",
            "/credentials/inject",
            {"mcpServerId": "fetched", "agentId": "agent-9", "expirationTime": expires.isoformat()},
        )

        assert status == 202, answer
        assert asked[0] == {"agentId": "agent-9", "accountToolInstanceId": "fetched"}
        # Version 1 lasts 3 s and is renewed at half-life, possibly before the replica runs, so
        # its source is checked in the log and the file is awaited whichever version wrote it
        # (the backend answers the same value both times).
        first = (await injected_versions(recorder, "fetched"))[1]
        assert (first["source"], first["agent_id"]) == ("backend", "agent-9")

        async def written() -> bool | None:
            files = await files_in(docker, owner_labels, "fetched", "token.txt")
            return True if files == [value.encode()] else None

        # A replica may be replaced while this looks (its first start under load can fail).
        # On a shell-less image the first container is made again without its tmpfs (the
        # adapter learns that once per image), so one may vanish while this looks.
        await wait_until(written, 60, retrying_on=(DockerNotFoundError,))

        # Near its expiry, the backend is asked again and a new version replaces it.
        await until_status(recorder, "fetched", "injected", 2)
        renewed = await credential_status(recorder, "fetched")
        assert (renewed["source"], renewed["expiresAt"], len(asked)) == ("expiry", None, 2)

        status, refused = await recorder.call(
            "POST",
            "/credentials/inject",
            {"mcpServerId": "fetched", "agentId": "someone-else"},
        )
        assert status == 409 and refused["error"]["code"] == "bound_to_another_agent"
    finally:
        await client.close()
        await sweep(docker, owner_labels)


@pytest.fixture
async def token_endpoint(aiohttp_server: Callable[..., Any]) -> dict[str, Any]:
    """An OAuth token endpoint's stand-in: refresh-token grants, short-lived tokens, rotated
    refresh tokens; `fail` makes it answer invalid_grant."""
    state: dict[str, Any] = {"requests": [], "issued": [], "times": [], "fail": False}

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        state["requests"].append(form)
        state["times"].append(time.monotonic())
        if state["fail"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        serial = len(state["issued"]) + 1
        access = f"tok-{serial}-{secrets.token_hex(8)}"
        state["issued"].append(access)
        return web.json_response(
            {
                "access_token": access,
                "expires_in": 4,
                "refresh_token": f"rt-{serial}-{secrets.token_hex(8)}",
            }
        )

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    state["url"] = str(server.make_url("/token"))
    return state


@pytest.fixture
async def oauth_service(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    docker: DockerAdapter,
    owner_labels: dict[str, str],
) -> AsyncIterator[Any]:
    """The service, allowed to reach the stand-in token endpoint on loopback."""
    client = await aiohttp_client(create_app(service_settings(outbound_allow=("127.0.0.1",))))
    try:
        yield client
    finally:
        await client.close()
        await sweep(docker, owner_labels)


async def test_oauth_tokens_are_obtained_refreshed_before_expiry_and_failures_reported(
    oauth_service: Any,
    mcp_image: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    token_endpoint: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(oauth_service)
    await deploy(recorder, "oauthy", mcp_image, replicas=1)
    client_secret, refresh_token = secret_value(), secret_value()
    provider = {
        "provider": "github",
        "clientId": "dtma-client",
        "clientSecret": client_secret,
        "scopes": ["repo", "read:org"],
        "tokenEndpoint": token_endpoint["url"],
        "refreshToken": refresh_token,
    }
    status, _ = await recorder.call(
        "POST",
        "/credentials/inject",
        {"mcpServerId": "oauthy", "agentId": "a", "credentials": {"oauthProviders": [provider]}},
    )
    assert status == 202
    issued: list[str] = token_endpoint["issued"]

    async def holds(serial: int) -> bool | None:
        if len(issued) < serial:
            return None
        files = await files_in(docker, owner_labels, "oauthy", "OAUTH_GITHUB_ACCESS_TOKEN")
        return True if files == [issued[serial - 1].encode()] else None

    await wait_until(lambda: holds(1), 60)
    await wait_until(lambda: holds(2), 30)  # refreshed: each token lasts 4 s

    first, second = token_endpoint["requests"][:2]
    assert first == {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": "dtma-client",
        "client_secret": client_secret,
        "scope": "repo read:org",
    }
    assert second["refresh_token"].startswith("rt-1-")  # the rotated one
    issued_at, renewed_at = token_endpoint["times"][:2]
    assert renewed_at - issued_at < 4  # before the first token expired
    listed = await credential_status(recorder, "oauthy")
    assert listed["names"] == ["OAUTH_GITHUB_ACCESS_TOKEN"] and listed["source"] == "oauth"

    token_endpoint["fail"] = True

    async def reported() -> dict[str, Any] | None:
        _, report = await recorder.call("GET", "/health/comprehensive")
        found = [a for a in report["recommendedActions"] if a["action"] == "check_oauth_provider"]
        return found[0] if found else None

    action = await wait_until(reported, 30)
    assert "invalid_grant" in action["reason"]
    failed = await credential_status(recorder, "oauthy")
    assert (
        failed["oauthProviders"][0]["lastError"]
        == "token endpoint answered HTTP 400: invalid_grant"
    )
    events_log = await recorder.call("GET", "/events?limit=1000")
    assert any(e["type"] == "OAuthRefreshFailed" for e in events_log[1]["events"])
    assert_nowhere([client_secret, refresh_token, *issued], recorder, tmp_path, caplog)


@pytest.mark.postgres
async def test_on_postgresql_no_table_holds_a_secret_and_revocation_shreds(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    postgres_url: str,
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    mcp_image: str,
) -> None:
    client = await aiohttp_client(create_app(service_settings(database_url=postgres_url)))
    value = secret_value()
    try:
        recorder = Recorder(client)
        await deploy(recorder, "pgcred", mcp_image, replicas=1)
        body = {
            "mcpServerId": "pgcred",
            "agentId": "a",
            "credentials": {"apiKeys": [{"name": "k.txt", "value": value, "mode": "file"}]},
        }
        status, _ = await recorder.call("POST", "/credentials/inject", body)
        assert status == 202
        await until_status(recorder, "pgcred", "injected", 1)
        status, _ = await recorder.call("DELETE", "/credentials/pgcred")
        assert status == 202
        await until_status(recorder, "pgcred", "revoked", 1)
    finally:
        await client.close()
        await sweep(docker, owner_labels)

    connection = await asyncpg.connect(
        postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    )
    try:
        dumped = []
        for table in ("events", "idempotency_keys", "checkpoints", "snapshots", "data_keys"):
            rows = await connection.fetch(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
            dumped.append(repr([tuple(r) for r in rows]))
        live = await connection.fetch("SELECT key_id FROM data_keys WHERE wrapped IS NOT NULL")
    finally:
        await connection.close()
    text = "".join(dumped)
    assert value not in text and base64.b64encode(value.encode()).decode() not in text
    assert {r["key_id"] for r in live} <= {"x25519-service", "ed25519-audit", "master-check"}
