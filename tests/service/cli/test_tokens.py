"""`dtma token add | list | revoke` as a subprocess on a SQLite file, and the service started on
that file honouring what they stored."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.settings import Settings
from tests.service.cli.test_main import DTMA, SCRUBBED, run_command

Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def dtma(tmp_path: Path) -> Run:
    """`dtma <args>` on tmp_path's dtma.db: (exit status, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env["DTMA_DATABASE_URL"] = f"sqlite:///{tmp_path / 'dtma.db'}"

    async def run(*args: str) -> tuple[int, str, str]:
        done = await run_command(str(DTMA), *args, env=env, cwd=tmp_path)
        return done.returncode, done.stdout, done.stderr

    return run


async def status_of(client: Any, method: str, path: str, token: str) -> int:
    body = {"failureThreshold": 3} if method == "POST" else None
    response = await client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    return int(response.status)


async def test_add_prints_the_token_once_stores_its_hash_and_the_service_honours_its_role(
    dtma: Run, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    code, out, err = await dtma("token", "add", "auditor", "--role", "reader")
    assert code == 0, err
    token = out.strip()
    assert len(token) >= 32
    code, listed, _ = await dtma("token", "list")
    assert code == 0
    assert token not in listed and "auditor" in listed and "reader" in listed
    assert token.encode() not in (tmp_path / "dtma.db").read_bytes()

    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'dtma.db'}", auth_token=None)
    async with TestClient(TestServer(create_app(settings))) as client:
        assert await status_of(client, "GET", "/events", token) == 200
        assert await status_of(client, "POST", "/health/circuit-breaker", token) == 403


async def test_revoke_removes_a_token_and_refuses_a_name_it_does_not_know(dtma: Run) -> None:
    assert (await dtma("token", "add", "ci", "--role", "operator"))[0] == 0

    code, out, _ = await dtma("token", "revoke", "ci")
    assert code == 0 and '"revoked": true' in out
    assert '"ci"' not in (await dtma("token", "list"))[1]
    code, _, err = await dtma("token", "revoke", "ci")
    assert code == 1 and "ci" in err


async def test_add_refuses_a_name_in_use_and_keeps_the_first_token(dtma: Run) -> None:
    assert (await dtma("token", "add", "ci", "--role", "metrics"))[0] == 0

    code, out, err = await dtma("token", "add", "ci", "--role", "admin")

    assert code == 1 and out == "" and "exists" in err
    assert '"role": "metrics"' in (await dtma("token", "list"))[1]


async def test_an_agent_token_records_its_agent_id(dtma: Run) -> None:
    code, _, err = await dtma("token", "add", "gw", "--role", "agent", "--agent", "agent-7")
    assert code == 0, err

    assert '"agentId": "agent-7"' in (await dtma("token", "list"))[1]
    code, _, err = await dtma("token", "add", "gw2", "--role", "agent")
    assert code == 2 and "agent id" in err


async def test_serve_has_no_auth_token_flag_since_argv_shows_in_ps(dtma: Run) -> None:
    code, _, err = await dtma("serve", "--auth-token", "t" * 40)

    assert code == 2
    assert "unrecognized arguments: --auth-token" in err
