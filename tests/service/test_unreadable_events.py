"""An event the projections cannot read degrades the service visibly; it keeps serving reads,
decides nothing on stale state, and `dtma skip` (recorded in the log) lets it go on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from eventstore import NewEvent
from projections import events
from service.app import create_app
from service.cli import main as cli
from service.settings import Settings
from tests.conftest import AUTH
from tests.support.api import error_of
from tests.support.databases import open_migrated_store
from tests.support.waiting import wait_until

Client: TypeAlias = TestClient[web.Request, web.Application]


async def write_unreadable_log(url: str) -> None:
    """Position 1 readable, 2 not (another release's data), 3 readable: written as a store
    without a catalogue would, which is how an older or newer release's log arrives."""
    store = await open_migrated_store(url)
    try:
        for event in (
            events.CATALOGUE.to_new_event(
                events.CircuitBreakerConfigured(mcp_server_id="search", failure_threshold=3)
            ),
            NewEvent("CircuitBreakerConfigured", {"failure_threshold": {"nested": "shape"}}),
            events.CATALOGUE.to_new_event(
                events.CircuitBreakerConfigured(mcp_server_id="search", failure_threshold=9)
            ),
        ):
            await store.append("breaker-search", [event], expected_version=None)
    finally:
        await store.close()


async def until_status(client: Client, path: str, status: int, within: float = 15.0) -> Any:
    """The JSON `path` answers once it answers `status`."""

    async def answered() -> Any:
        response = await client.get(path, headers=AUTH)
        return await response.json() if response.status == status else None

    return await wait_until(answered, within, interval=0.05)


async def test_a_start_on_an_unreadable_event_serves_reads_reports_degraded_and_skip_resumes(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'dtma.db'}"
    await write_unreadable_log(url)
    settings = make_settings(database_url=url)
    client: Client
    async with TestClient(TestServer(create_app(settings))) as client:
        health = await client.get("/healthz")
        assert health.status == 503
        body = await health.json()
        assert body["status"] == "degraded"
        assert body["projections"]["position"] == 1 and body["projections"]["head"] == 3
        assert body["projections"]["error"]["position"] == 2
        assert body["projections"]["error"]["type"] == "CircuitBreakerConfigured"
        assert "nested" not in body["projections"]["error"]["message"]  # never the data

        served = await client.get("/health/mcp/search", headers=AUTH)
        assert served.status == 200
        assert (await served.json())["config"]["failureThreshold"] == 3
        waited = await client.get("/health/mcp/search?minPosition=3", headers=AUTH)
        assert (await error_of(waited, 503))["code"] == "projections_stopped"
        command = await client.post(
            "/health/circuit-breaker", json={"failureThreshold": 4}, headers=AUTH
        )
        error = await error_of(command, 503)
        assert error["code"] == "projections_stopped"
        assert error["details"][0]["error"]["position"] == 2
        metrics = await (await client.get("/metrics", headers=AUTH)).text()
        assert "dtma_projections_stopped 1.0" in metrics
        assert "dtma_projection_failures_total 1.0" in metrics

        skipped = await asyncio.to_thread(
            cli.main, ["skip", "2", "--reason", "written by a test", "--database-url", url]
        )
        assert skipped == 0
        await until_status(client, "/healthz", 200)
        served = await client.get("/health/mcp/search?minPosition=4", headers=AUTH)
        assert (await served.json())["config"]["failureThreshold"] == 9
        command = await client.post(
            "/health/circuit-breaker", json={"failureThreshold": 4}, headers=AUTH
        )
        assert command.status == 200
        metrics = await (await client.get("/metrics", headers=AUTH)).text()
        assert "dtma_projections_stopped 0.0" in metrics


async def test_an_unreadable_event_appended_while_serving_degrades_it_at_once(
    client: Client, make_settings: Callable[..., Settings]
) -> None:
    url = make_settings().database_url
    assert (await client.get("/healthz")).status == 200
    other = await open_migrated_store(url)
    try:
        await other.append("breaker-x", [NewEvent("NoSuchEvent", {"a": 1})], None)
    finally:
        await other.close()
    body = await until_status(client, "/healthz", 503)
    assert body["projections"]["error"]["type"] == "NoSuchEvent"
    listed = await client.get("/mcp-servers/status", headers=AUTH)
    assert listed.status == 200


async def test_rebuild_and_replay_name_an_unreadable_event_and_exit_1_until_it_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'dtma.db'}"
    await write_unreadable_log(url)
    flags = ["--database-url", url]
    for command in (["rebuild"], ["replay"]):
        assert await asyncio.to_thread(cli.main, [*command, *flags]) == 1
        err = capsys.readouterr().err
        assert "position 2 (CircuitBreakerConfigured)" in err and "dtma skip 2" in err
        assert "Traceback" not in err
    assert await asyncio.to_thread(cli.main, ["skip", "1", "--reason", "r", *flags]) == 1
    assert "reads fine" in capsys.readouterr().err
    assert await asyncio.to_thread(cli.main, ["skip", "2", "--reason", "r", *flags]) == 0
    assert await asyncio.to_thread(cli.main, ["skip", "2", "--reason", "r", *flags]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["rebuild", *flags]) == 0
    assert '"position": 4' in capsys.readouterr().out
    store = await open_migrated_store(url)
    try:
        skips = await store.read_stream("log-skips")
        assert len(skips) == 1 and skips[0].metadata["actor"].startswith("operator:")
    finally:
        await store.close()
