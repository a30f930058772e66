"""The `dtma` console script as operators run it: subprocesses on a SQLite file in tmp_path."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from alembic.script import ScriptDirectory

import migrations
from eventstore import keyfile
from projections import health
from service.api.keys import runner_key
from service.app import create_app
from service.settings import CONF_FILE, Settings
from tests.conftest import AUTH, TOKEN, isolating_labels
from tests.support.ports import free_port

DTMA = Path(sys.executable).with_name("dtma")
COMMAND_TIMEOUT_S = 60.0
SERVE_START_TIMEOUT_S = 30.0
# Settings that must come only from what each test sets.
SCRUBBED = ("DTMA_", "BACKEND_TO_DTMA_API_KEY", "PORT", "AGENTOPIA_API_BASE_URL")


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass(frozen=True)
class Log:
    """What the live app appended and served, to compare the CLI's answers with."""

    events: list[dict[str, Any]]
    state: dict[str, Any]
    served_config: dict[str, Any]

    def recorded_at(self, position: int) -> datetime:
        return datetime.fromisoformat(self.events[position - 1]["recordedAt"])


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    return tmp_path / "dtma.db"


@pytest.fixture
def cli_env(tmp_path: Path, database_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED)}
    env["DTMA_DATABASE_URL"] = f"sqlite:///{database_file}"
    env["DTMA_OWNER_LABELS"] = ",".join(f"{k}={v}" for k, v in isolating_labels().items())
    env["DTMA_KEY_FILE"] = str(tmp_path / "dtma.key")
    return env


@pytest.fixture
def dtma(tmp_path: Path, cli_env: dict[str, str]) -> Callable[..., Awaitable[Finished]]:
    """Runs `dtma <args>` to completion; keyword arguments are extra environment variables."""

    async def run(*args: str, **extra_env: str) -> Finished:
        return await run_command(str(DTMA), *args, env={**cli_env, **extra_env}, cwd=tmp_path)

    return run


async def run_command(*command: str, env: dict[str, str], cwd: Path) -> Finished:
    """Runs `command` to completion (killed past COMMAND_TIMEOUT_S), its output captured."""
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


@pytest.fixture
def dtma_process(
    tmp_path: Path, cli_env: dict[str, str]
) -> Callable[..., Awaitable[asyncio.subprocess.Process]]:
    """Starts `dtma <args>` and leaves it running; the test ends it."""

    async def start(*args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            str(DTMA),
            *args,
            env=cli_env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )

    return start


@pytest.fixture
async def log(make_settings: Callable[..., Settings], database_file: Path) -> Log:
    """Three breaker configurations for `search` (failure thresholds 3, 5, 8) appended by the
    app in-process on the same SQLite file, which is closed again before the CLI runs."""
    settings = make_settings(database_url=f"sqlite:///{database_file}")
    client: TestClient[web.Request, web.Application]
    async with TestClient(TestServer(create_app(settings))) as client:
        position = 0
        for threshold in (3, 5, 8):
            response = await client.post(
                "/health/circuit-breaker",
                json={"mcpServerId": "search", "failureThreshold": threshold},
                headers=AUTH,
            )
            assert response.status == 200
            position = (await response.json())["position"]
        served = await client.get(f"/health/mcp/search?minPosition={position}", headers=AUTH)
        assert served.status == 200
        events = (await (await client.get("/events", headers=AUTH)).json())["events"]
        folds = client.app[runner_key].folds
        state = {name: model.model_dump(mode="json") for name, model in folds.states.items()}
        served_config = (await served.json())["config"]
    assert [e["position"] for e in events] == [1, 2, 3]
    return Log(events=events, state=state, served_config=served_config)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(migrations.alembic_config()).get_current_head()


# -- migrate -----------------------------------------------------------------------------------


async def test_migrate_creates_the_database_and_prints_the_head_revision(
    dtma: Callable[..., Awaitable[Finished]], database_file: Path
) -> None:
    result = await dtma("migrate")

    assert result.returncode == 0, result.stderr
    assert result.json() == {"revision": head_revision()}
    assert head_revision()
    assert await asyncio.to_thread(database_file.is_file)


async def test_migrate_twice_is_harmless(dtma: Callable[..., Awaitable[Finished]]) -> None:
    first = await dtma("migrate")
    second = await dtma("migrate")

    assert (first.returncode, second.returncode) == (0, 0)
    assert second.json() == first.json()


# -- events ------------------------------------------------------------------------------------


async def test_events_prints_one_json_line_per_event(
    dtma: Callable[..., Awaitable[Finished]], log: Log
) -> None:
    result = await dtma("events")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line) for line in lines] == log.events


async def test_events_after_a_position_prints_only_later_events(
    dtma: Callable[..., Awaitable[Finished]], log: Log
) -> None:
    result = await dtma("events", "--after", "2")

    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == log.events[2:]


async def test_events_pretty_prints_one_line_per_event_for_a_person(
    dtma: Callable[..., Awaitable[Finished]], log: Log
) -> None:
    result = await dtma("events", "--format", "pretty")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(log.events)
    for line, event in zip(lines, log.events, strict=True):
        position, day, clock, stream, type_name, actor, data = line.split(maxsplit=6)
        assert int(position) == event["position"]
        assert f"{day}T{clock}" == event["recordedAt"][:23]
        assert stream == f"{event['streamId']}@{event['version']}"
        assert (type_name, actor) == (event["type"], event["metadata"]["actor"])
        assert json.loads(data) == event["data"]
        assert "\033" not in line  # no colour: the output is not a terminal


async def test_events_follow_prints_what_is_appended_later(
    dtma_process: Callable[..., Awaitable[asyncio.subprocess.Process]],
    log: Log,
    make_settings: Callable[..., Settings],
    database_file: Path,
) -> None:
    follower = await dtma_process("events", "--follow", "--after", "3", "--format", "pretty")
    try:
        settings = make_settings(database_url=f"sqlite:///{database_file}")
        async with TestClient(TestServer(create_app(settings))) as client:
            response = await client.post(
                "/health/circuit-breaker", json={"failureThreshold": 11}, headers=AUTH
            )
            assert response.status == 200
        assert follower.stdout is not None
        line = await asyncio.wait_for(follower.stdout.readline(), COMMAND_TIMEOUT_S)
        assert line.split()[0] == b"4"
        assert b"CircuitBreakerConfigured" in line and b'"failure_threshold":11' in line
    finally:
        follower.terminate()
        await follower.wait()


# -- replay ------------------------------------------------------------------------------------


async def test_replay_until_a_position_shows_the_state_as_of_that_position(
    dtma: Callable[..., Awaitable[Finished]], log: Log
) -> None:
    result = await dtma("replay", "--until", "2")

    assert result.returncode == 0, result.stderr
    replayed = result.json()
    assert replayed["position"] == 2
    assert replayed["recordedAt"] == log.events[1]["recordedAt"]
    assert replayed["state"]["health"]["breaker_servers"]["search"]["failure_threshold"] == 5


@pytest.mark.parametrize("zone", ["+00:00", "Z", ""], ids=["offset", "zulu", "naive-utc"])
async def test_replay_until_a_time_between_two_events_shows_the_earlier_state(
    dtma: Callable[..., Awaitable[Finished]], log: Log, zone: str
) -> None:
    second, third = log.recorded_at(2), log.recorded_at(3)
    assert second < third
    between = second + (third - second) / 2
    until = between.replace(tzinfo=None).isoformat(timespec="microseconds") + zone

    result = await dtma("replay", "--until", until)

    assert result.returncode == 0, result.stderr
    replayed = result.json()
    assert replayed["position"] == 2
    assert replayed["state"]["health"]["breaker_servers"]["search"]["failure_threshold"] == 5


async def test_replay_until_before_the_first_event_shows_the_empty_state(
    dtma: Callable[..., Awaitable[Finished]], log: Log
) -> None:
    result = await dtma("replay", "--until", "0")

    assert result.returncode == 0, result.stderr
    replayed = result.json()
    assert (replayed["position"], replayed["recordedAt"]) == (0, None)
    assert replayed["state"]["health"]["breaker_servers"] == {}


async def test_replay_without_until_shows_the_state_the_live_app_held(
    dtma: Callable[..., Awaitable[Finished]], log: Log
) -> None:
    result = await dtma("replay")

    assert result.returncode == 0, result.stderr
    assert result.json()["position"] == 3
    assert result.json()["state"] == log.state


async def test_replay_refuses_an_until_that_is_neither_position_nor_time_with_exit_2(
    dtma: Callable[..., Awaitable[Finished]], log: Log
) -> None:
    result = await dtma("replay", "--until", "yesterday")

    assert result.returncode == 2
    assert "--until" in result.stderr
    assert "Traceback" not in result.stderr


# -- rebuild -----------------------------------------------------------------------------------


async def test_rebuild_prints_the_head_and_the_replayed_state_matches_what_was_served(
    dtma: Callable[..., Awaitable[Finished]], log: Log
) -> None:
    rebuilt = await dtma("rebuild")
    replayed = await dtma("replay")

    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.json()["position"] == 3
    assert "rebuild: 3 / 3 events (100%)" in rebuilt.stderr  # the progress, finished
    assert "health" in rebuilt.json()["projections"]
    assert replayed.json()["state"] == log.state
    search = health.HealthState.model_validate(replayed.json()["state"]["health"])
    config = search.breaker_config("search")
    assert log.served_config["failureThreshold"] == config.failure_threshold == 8
    assert log.served_config["recoveryThreshold"] == config.recovery_threshold


# -- audit verify ------------------------------------------------------------------------------


async def test_audit_verify_passes_then_fails_at_the_tampered_position(
    dtma: Callable[..., Awaitable[Finished]], log: Log, database_file: Path
) -> None:
    intact = await dtma("audit", "verify")

    assert intact.returncode == 0, intact.stderr
    assert intact.json() == {
        "ok": True,
        "checked": 3,
        "headPosition": 3,
        "headHash": log.events[-1]["hash"],
        "firstBadPosition": None,
        "checkpoints": {
            "checked": 0,
            "lastVerifiedPosition": 0,
            "keyIds": [],
            "keysFrom": "checkpoints",
        },
    }

    with sqlite3.connect(database_file) as connection:
        changed = connection.execute(
            "UPDATE events SET data = replace(data, '5', '6') WHERE position = 2"
        ).rowcount
    assert changed == 1
    tampered = await dtma("audit", "verify")

    assert tampered.returncode == 1
    report = tampered.json()
    assert report["ok"] is False
    assert report["firstBadPosition"] == 2
    assert report["checked"] == 3


# -- keys rotate -------------------------------------------------------------------------------


async def test_keys_rotate_rewraps_every_data_key_and_prints_fingerprints_never_keys(
    dtma: Callable[..., Awaitable[Finished]], tmp_path: Path, database_file: Path
) -> None:
    key_file = tmp_path / "dtma.key"

    first = await dtma("keys", "rotate")
    first_key = key_file.read_text().strip()
    second = await dtma("keys", "rotate")

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert first.json()["fingerprint"] != first.json()["previous"]
    assert second.json()["previous"] == first.json()["fingerprint"]
    assert second.json()["fingerprint"] == keyfile.read_key(key_file).fingerprint
    assert second.json()["rewrapped"] >= 1
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not keyfile.pending_path(key_file).exists()
    with sqlite3.connect(database_file) as connection:
        wrapped_by = connection.execute(
            "SELECT DISTINCT master_fingerprint FROM data_keys WHERE wrapped IS NOT NULL"
        ).fetchall()
    assert wrapped_by == [(second.json()["fingerprint"],)]
    printed = first.stdout + first.stderr + second.stdout + second.stderr
    assert first_key not in printed and key_file.read_text().strip() not in printed


async def test_keys_rotate_refuses_a_key_file_open_to_others_with_exit_1(
    dtma: Callable[..., Awaitable[Finished]], tmp_path: Path
) -> None:
    key_file = tmp_path / "dtma.key"
    key_file.write_text(keyfile.MasterKey.generate().fingerprint.ljust(43, "A") + "=\n")
    key_file.chmod(0o644)

    result = await dtma("keys", "rotate")

    assert result.returncode == 1
    assert "0600" in result.stderr
    assert "Traceback" not in result.stderr
    assert key_file.read_text().strip() not in result.stdout + result.stderr


# -- serve and settings ------------------------------------------------------------------------


async def test_serve_without_a_token_exits_2_naming_dtma_auth_token(
    dtma: Callable[..., Awaitable[Finished]],
) -> None:
    if CONF_FILE.is_file():
        pytest.skip(f"{CONF_FILE} exists on this machine and may hold a token")

    result = await dtma("serve", "--port", str(free_port()))

    assert result.returncode == 2
    assert "DTMA_AUTH_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


async def test_refuses_an_unsupported_database_url_with_exit_2(
    dtma: Callable[..., Awaitable[Finished]],
) -> None:
    result = await dtma("migrate", DTMA_DATABASE_URL="mysql://user:pw@localhost/dtma")

    assert result.returncode == 2
    assert "DTMA_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


async def wait_for_healthz(process: asyncio.subprocess.Process, url: str) -> dict[str, Any]:
    """Polls `url` until it answers 200, the process dies, or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SERVE_START_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while True:
            assert process.returncode is None, "dtma serve exited before answering"
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as answer:
                    if answer.status == 200:
                        body: dict[str, Any] = await answer.json()
                        return body
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"{url} did not answer within {SERVE_START_TIMEOUT_S} s")
            await asyncio.sleep(0.1)  # the poll interval, not synchronisation


@pytest.mark.parametrize("token_variable", ["DTMA_AUTH_TOKEN", "BACKEND_TO_DTMA_API_KEY"])
async def test_serve_answers_healthz_and_stops_cleanly_on_sigterm(
    tmp_path: Path, cli_env: dict[str, str], token_variable: str
) -> None:
    port = free_port()
    env = {**cli_env, token_variable: TOKEN, "DTMA_HOST": "127.0.0.1", "DTMA_PORT": str(port)}
    process = await asyncio.create_subprocess_exec(
        str(DTMA),
        "serve",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        healthz = await wait_for_healthz(process, f"http://127.0.0.1:{port}/healthz")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/events", headers=AUTH) as listed,
            session.get(f"http://127.0.0.1:{port}/events") as refused,
        ):
            assert (listed.status, refused.status) == (200, 401)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)

    assert healthz["status"] == "ok"
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in err.decode()
    assert TOKEN not in out.decode() + err.decode()
