"""Docker's event stream through the adapter: parsing, replay with `since`, a lost connection
(against a fake engine on a Unix socket), and deaths, kills and OOM kills on the real engine."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from service.docker.adapter import (
    MANAGED_LABEL,
    ContainerSpec,
    DockerAdapter,
    DockerEvent,
    DockerUnavailableError,
)
from service.docker.events import parse_event, since_param
from tests.support.docker import run_labels
from tests.support.docker_cli import docker_cli
from tests.support.images import ensure_busybox_image
from tests.support.mcp_image import ensure_mcp_image

EVENT_DEADLINE_S = 15
SECOND = 1_000_000_000


def raw_event(action: str, attributes: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": "c0ffee", "Attributes": attributes},
        "scope": "local",
        "time": 1_700_000_000,
        "timeNano": 1_700_000_000_123_456_789,
        **extra,
    }


# Parsing


def test_parses_a_death_into_its_exit_code_and_the_container_labels() -> None:
    attributes = {"exitCode": "137", "image": "x:1", "name": "dtma-g-s-1", "dtma.server": "s"}

    event = parse_event(raw_event("die", attributes))

    assert event == DockerEvent(
        action="die",
        container_id="c0ffee",
        name="dtma-g-s-1",
        image="x:1",
        labels={"dtma.server": "s"},
        time_nano=1_700_000_000_123_456_789,
        exit_code=137,
    )


def test_splits_a_health_status_into_action_and_health() -> None:
    event = parse_event(raw_event("health_status: unhealthy", {"name": "n"}))

    assert event is not None
    assert (event.action, event.health, event.exit_code) == ("health_status", "unhealthy", None)


def test_keeps_only_the_action_of_an_exec_and_never_its_command() -> None:
    event = parse_event(raw_event("exec_start: sh -c echo secret", {"execID": "e1", "name": "n"}))

    assert event is not None
    assert (event.action, event.health, event.labels) == ("exec_start", None, {})


def test_ignores_messages_about_anything_but_containers() -> None:
    assert parse_event({**raw_event("connect", {}), "Type": "network"}) is None


def test_falls_back_to_whole_seconds_without_time_nano() -> None:
    raw = raw_event("start", {})
    del raw["timeNano"]

    event = parse_event(raw)

    assert event is not None and event.time_nano == 1_700_000_000 * SECOND


def test_formats_since_as_seconds_with_nine_decimals() -> None:
    assert since_param(1_700_000_000_000_000_042) == "1700000000.000000042"
    assert since_param(5) == "0.000000005"


# A fake engine: the stream ends, or breaks mid-line


class FakeEngine:
    """Answers /version and /v1.41/events on a Unix socket; records the events queries."""

    def __init__(self, messages: list[dict[str, Any]], *, cut_mid_line: bool) -> None:
        self.messages = messages
        self.cut_mid_line = cut_mid_line
        self.queries: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/version", self.version)
        app.router.add_get("/v1.41/events", self.events)
        return app

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"ApiVersion": "1.41", "Version": "20.10.24"})

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for message in self.messages:
            await response.write(json.dumps(message).encode() + b"\n")
        if self.cut_mid_line:
            await response.write(b'{"Type": "contai')
            assert request.transport is not None
            request.transport.close()  # the engine goes away: no end of the chunked body
        return response


@pytest.fixture
async def fake_engine(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def serve(engine: FakeEngine) -> str:
        runner = web.AppRunner(engine.app())
        await runner.setup()
        runners.append(runner)
        path = tmp_path / f"engine-{len(runners)}.sock"
        await web.UnixSite(runner, str(path)).start()
        return f"unix://{path}"

    try:
        yield serve
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.mark.parametrize("cut_mid_line", [False, True], ids=["ended", "cut"])
async def test_a_lost_event_stream_raises_unavailable_after_what_it_delivered(
    fake_engine: Callable[..., Any], cut_mid_line: bool
) -> None:
    messages = [
        raw_event("start", {"name": "one"}),
        {**raw_event("connect", {}), "Type": "network"},
        raw_event("die", {"name": "one", "exitCode": "3"}),
    ]
    engine = FakeEngine(messages, cut_mid_line=cut_mid_line)
    received: list[DockerEvent] = []

    async with DockerAdapter(await fake_engine(engine)) as docker:
        with pytest.raises(DockerUnavailableError) as raised:
            async with asyncio.timeout(EVENT_DEADLINE_S):
                async for event in docker.events(since_nano=1_700_000_000_000_000_042):
                    received.append(event)

    assert [(event.action, event.exit_code) for event in received] == [("start", None), ("die", 3)]
    assert raised.value.status == 503
    [query] = engine.queries
    assert query["since"] == "1700000000.000000042"
    assert json.loads(query["filters"]) == {"type": ["container"], "label": ["dtma.managed=true"]}


async def test_following_events_from_now_sends_no_since(fake_engine: Callable[..., Any]) -> None:
    engine = FakeEngine([], cut_mid_line=False)

    async with DockerAdapter(await fake_engine(engine)) as docker:
        with pytest.raises(DockerUnavailableError):
            async for _ in docker.events():
                pass

    assert "since" not in engine.queries[0]


async def test_events_from_an_engine_that_does_not_answer_raise_unavailable() -> None:
    socket = f"unix:///tmp/nonexistent-{secrets.token_hex(4)}.sock"

    async with DockerAdapter(socket) as docker:
        with pytest.raises(DockerUnavailableError):
            async for _ in docker.events(since_nano=time.time_ns()):
                pass


# The real engine


def labelled(server: str) -> dict[str, str]:
    group = f"t{secrets.token_hex(4)}"
    return {**run_labels(), "dtma.group": group, "dtma.server": server, "dtma.replica": "1"}


async def events_of(
    docker: DockerAdapter, container_id: str, since_nano: int, until: str
) -> list[DockerEvent]:
    """`container_id`'s events from `since_nano` up to its first `until` event."""
    seen: list[DockerEvent] = []
    async with asyncio.timeout(EVENT_DEADLINE_S):
        async with aclosing(docker.events(since_nano)) as stream:
            async for event in stream:
                if event.container_id == container_id:
                    seen.append(event)
                    if event.action == until:
                        return seen
    raise AssertionError("the stream ended")


@pytest.mark.docker
async def test_reports_a_kill_from_outside_and_replays_it_from_since(
    docker: DockerAdapter,
) -> None:
    busybox = await ensure_busybox_image(docker)
    labels = labelled("sleeper")
    spec = ContainerSpec(
        name=f"dtma-{labels['dtma.group']}-sleeper-1",
        image=busybox,
        labels=labels,
        command=["sleep", "600"],
    )
    before = time.time_ns()
    container_id = await docker.create_container(spec)
    follow = asyncio.create_task(events_of(docker, container_id, before, until="destroy"))
    await docker.start_container(container_id)

    await docker_cli("kill", container_id)
    await docker_cli("rm", container_id)
    live = await follow
    replayed = await events_of(docker, container_id, before, until="destroy")
    die = next(event for event in live if event.action == "die")
    from_die = await events_of(docker, container_id, die.time_nano, until="die")

    assert [event.action for event in live] == ["create", "start", "kill", "die", "destroy"]
    assert replayed == live
    assert from_die == [die]  # `since` is inclusive: a reconnect sees its last event again
    assert (die.exit_code, die.name) == (137, spec.name)
    assert die.labels == {**labels, MANAGED_LABEL: "true"}
    assert all(event.labels == die.labels for event in live)
    assert [event.time_nano for event in live] == sorted(event.time_nano for event in live)
    assert before <= live[0].time_nano


@pytest.mark.docker
async def test_reports_an_oom_kill_as_oom_then_die(docker: DockerAdapter) -> None:
    image = await ensure_mcp_image(docker)
    labels = labelled("hog")
    spec = ContainerSpec(
        name=f"dtma-{labels['dtma.group']}-hog-1",
        image=image,
        labels=labels,
        env={"MCP_ALLOCATE_MB": "200"},
        container_port=8000,
        memory_mb=64,
    )
    before = time.time_ns()
    container_id = await docker.create_container(spec)

    port = await docker.start_container(container_id)  # None if it died already
    seen = await events_of(docker, container_id, before, until="die")
    info = await docker.inspect_container(container_id)

    assert [event.action for event in seen] == ["create", "start", "oom", "die"]
    assert seen[-1].exit_code == 137
    assert (info.oom_killed, info.exit_code, info.state, info.running) == (
        True,
        137,
        "exited",
        False,
    )
    assert info.host_port is None
    assert port is None or isinstance(port, int)
