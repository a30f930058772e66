"""The heartbeat against a stand-in backend: a small aiohttp app on the loopback that records
what it is sent and answers as each test tells it to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from projections import containers, groups
from service.backend import client as backend
from service.backend import heartbeat
from service.legacy import decisions as decide
from service.legacy import handlers as legacy
from tests.support.waiting import wait_until

TOKEN = "hb-token-" + secrets.token_hex(8)
NEVER = 3600.0  # an interval no test waits for

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@dataclass
class StandIn:
    """What the stand-in backend was sent, and how it answers: `statuses` in turn (then 200),
    after `release` is set when `hold` is."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    hold: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.authorizations.append(request.headers.get("Authorization"))
        self.arrived.set()
        if self.hold:
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"ok": status == 200}, status=status)


@pytest.fixture
async def stand_in(aiohttp_server: ServerFactory) -> AsyncIterator[tuple[StandIn, str]]:
    recorder = StandIn()
    app = web.Application()
    app.router.add_post("/api/heartbeat", recorder.handle)
    app.router.add_post("/api/echo", echo)
    server = await aiohttp_server(app)
    try:
        yield recorder, str(server.make_url("/api"))
    finally:
        recorder.release.set()  # a held handler ends, so the server closes at once


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"got": await request.json()})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@contextlib.asynccontextmanager
async def running(beat: heartbeat.Heartbeat) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(beat.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def counting_payload() -> tuple[Callable[[], dict[str, Any]], dict[str, Any]]:
    """A payload whose `n` counts the calls and whose `note` is whatever the test last set."""
    state: dict[str, Any] = {"n": 0, "note": "start"}

    def payload() -> dict[str, Any]:
        state["n"] += 1
        return heartbeat.heartbeat_payload(
            "1.2.3", {"note": state["note"]}, [], [{"n": state["n"]}]
        )

    return payload, state


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_sends_the_first_heartbeat_at_start_with_the_contract_keys_and_the_token(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    payload, _ = counting_payload()
    beat = heartbeat.Heartbeat(backend.BackendClient(url, TOKEN, session), payload, NEVER)

    async with running(beat):
        await asyncio.wait_for(recorder.arrived.wait(), 5)
        await wait_until(async_(lambda: beat.sent == 1), 5)

    assert set(recorder.bodies[0]) == {
        "dtma_version",
        "system_status",
        "tool_statuses",
        "mcp_servers",
    }
    assert recorder.authorizations == [f"Bearer {TOKEN}"]
    assert (beat.failed, beat.last_error) == (0, None)


async def test_sends_no_authorization_without_a_token(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    beat = heartbeat.Heartbeat(backend.BackendClient(url, None, session), counting_payload()[0])

    async with running(beat):
        await wait_until(async_(lambda: beat.sent == 1), 5)

    assert recorder.authorizations == [None]


async def test_a_poke_sends_at_once_long_before_the_interval(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    payload, state = counting_payload()
    beat = heartbeat.Heartbeat(backend.BackendClient(url, TOKEN, session), payload, NEVER)

    async with running(beat):
        await wait_until(async_(lambda: beat.sent == 1), 5)
        state["note"] = "poked"
        beat.poke()
        await wait_until(async_(lambda: beat.sent == 2), 5)

    assert [body["system_status"]["note"] for body in recorder.bodies] == ["start", "poked"]


async def test_the_interval_sends_again(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    beat = heartbeat.Heartbeat(
        backend.BackendClient(url, TOKEN, session), counting_payload()[0], 0.05
    )

    async with running(beat):
        await wait_until(async_(lambda: beat.sent >= 3), 5)

    assert len(recorder.bodies) >= 3


async def test_pokes_during_a_send_make_exactly_one_more_send_with_a_fresh_payload(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.hold = True
    payload, state = counting_payload()
    beat = heartbeat.Heartbeat(backend.BackendClient(url, TOKEN, session), payload, NEVER)

    async with running(beat):
        await asyncio.wait_for(recorder.arrived.wait(), 5)
        state["note"] = "changed during the send"
        for _ in range(3):
            beat.poke()
        recorder.hold = False
        recorder.release.set()
        await wait_until(async_(lambda: beat.sent == 2), 5)
        # Had the pokes queued more than one send, the next would be built by now (the loop
        # does not yield between a delivery and building the next payload).
        state["note"] = "after"
        beat.poke()
        await wait_until(async_(lambda: beat.sent == 3), 5)

    notes = [body["system_status"]["note"] for body in recorder.bodies]
    assert notes == ["start", "changed during the send", "after"]
    assert state["n"] == 3


async def test_a_failed_send_is_retried_and_delivered_and_counted(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.statuses = [500]
    client = backend.BackendClient(url, TOKEN, session)
    beat = heartbeat.Heartbeat(client, counting_payload()[0], NEVER, first_retry_delay_s=0.01)

    async with running(beat):
        await wait_until(async_(lambda: beat.sent == 1), 5)

    assert (beat.failed, len(recorder.bodies), beat.last_error) == (1, 2, None)
    assert [body["mcp_servers"] for body in recorder.bodies] == [[{"n": 1}], [{"n": 2}]]


async def test_a_hanging_backend_never_blocks_a_poke_and_counts_as_a_failure(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.hold = True
    client = backend.BackendClient(url, TOKEN, session, timeout_s=0.2)
    beat = heartbeat.Heartbeat(client, counting_payload()[0], NEVER, first_retry_delay_s=0.01)

    async with running(beat) as task:
        await asyncio.wait_for(recorder.arrived.wait(), 5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        beat.poke()
        assert loop.time() - started < 0.05
        await wait_until(async_(lambda: beat.failed >= 2), 5)
        assert not task.done()

    assert beat.sent == 0
    assert beat.last_error == "POST /heartbeat: no answer within 0.2 s"


async def test_a_down_backend_never_raises_out_of_run(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    client = backend.BackendClient(f"http://127.0.0.1:{closed_port()}", TOKEN, session)
    beat = heartbeat.Heartbeat(client, counting_payload()[0], NEVER, first_retry_delay_s=0.01)

    with caplog.at_level(logging.DEBUG):
        async with running(beat) as task:
            await wait_until(async_(lambda: beat.failed >= 3), 5)
            beat.poke()
            await wait_until(async_(lambda: beat.failed >= 4), 5)
            assert not task.done()

    assert beat.last_error is not None and "could not reach the backend" in beat.last_error
    assert any(record.levelno == logging.WARNING for record in caplog.records)
    assert_no_secret_logged(caplog)


async def test_neither_the_token_nor_the_payload_reaches_the_log(
    stand_in: tuple[StandIn, str],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder, url = stand_in
    recorder.statuses = [500, 401, 503]
    client = backend.BackendClient(url, TOKEN, session)
    beat = heartbeat.Heartbeat(client, counting_payload()[0], NEVER, first_retry_delay_s=0.01)

    with caplog.at_level(logging.DEBUG):
        async with running(beat):
            await wait_until(async_(lambda: beat.sent == 1), 5)

    assert beat.failed == 3
    assert "answered 500" in caplog.text and "answered 401" in caplog.text
    assert_no_secret_logged(caplog)


async def test_a_payload_that_fails_to_build_is_counted_and_run_goes_on(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    calls = 0

    def payload() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("cannot read /proc")
        return heartbeat.heartbeat_payload("1", {}, [], [])

    client = backend.BackendClient(url, TOKEN, session)
    beat = heartbeat.Heartbeat(client, payload, NEVER, first_retry_delay_s=0.01)

    async with running(beat):
        await wait_until(async_(lambda: beat.sent == 1), 5)

    assert (beat.failed, len(recorder.bodies)) == (1, 1)


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert TOKEN not in text
        assert "note" not in text  # the payload's keys


def async_(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return predicate()

    return probe


# The payload, pure.


def test_the_payload_has_exactly_the_contracts_keys() -> None:
    system = {"cpu_load_percent": 1.5, "uptime_seconds": 10.0}
    tools = [{"account_tool_instance_id": "ati-1", "status_on_toolbox": "running"}]
    servers = [{"id": "s1", "status": "running"}]

    payload = heartbeat.heartbeat_payload("0.1.0", system, tools, servers)

    assert payload == {
        "dtma_version": "0.1.0",
        "system_status": system,
        "tool_statuses": tools,
        "mcp_servers": servers,
    }


def test_the_payload_of_an_empty_host_has_empty_lists() -> None:
    payload = heartbeat.heartbeat_payload("0.1.0", {}, [], [])

    assert (payload["tool_statuses"], payload["mcp_servers"]) == ([], [])


@pytest.mark.parametrize(
    ("status", "on_toolbox"),
    [
        ("pending", "pending"),
        ("starting", "starting"),
        ("running", "running"),
        ("stopping", "stopping"),
        ("stopped", "stopped"),
        ("error", "error"),
        ("exited", "error"),
        ("", "error"),
    ],
)
def test_tool_statuses_map_onto_the_backends_words(status: str, on_toolbox: str) -> None:
    assert heartbeat.tool_status_on_toolbox(status) == on_toolbox


@pytest.mark.parametrize(
    ("replicas", "states", "expected"),
    [
        (0, [], "stopped"),
        (0, ["running"], "stopping"),
        (1, [], "pending"),
        (1, ["created"], "starting"),
        (1, ["running"], "running"),
        (1, ["failed"], "error"),
        (1, ["exited"], "error"),
    ],
)
def test_what_a_legacy_tool_reports_is_passed_on_unchanged(
    replicas: int, states: list[containers.State], expected: str
) -> None:
    server = legacy_server(replicas=replicas)

    status = decide.tool_status(server, [instance(state) for state in states])

    assert heartbeat.tool_status_on_toolbox(status) == status == expected


def test_a_legacy_tool_becomes_a_tool_status_with_its_account_tool_instance_id() -> None:
    tool = legacy.Tool("My Tool", legacy_server(replicas=1), instance("running"), "running")

    (status,) = heartbeat.tool_statuses([tool])

    assert status["account_tool_instance_id"] == "ati-7"
    assert status["status_on_toolbox"] == "running"
    assert status["runtime_details"]["instance_name_on_toolbox"] == "My Tool"
    assert status["runtime_details"]["container_id"] == "c0ffee"


def test_a_tool_without_a_container_has_no_container_id() -> None:
    tool = legacy.Tool("My Tool", legacy_server(replicas=1), None, "pending")

    (status,) = heartbeat.tool_statuses([tool])

    assert status["status_on_toolbox"] == "pending"
    assert status["runtime_details"]["container_id"] is None


def legacy_server(replicas: int) -> groups.ServerState:
    command = decide.CreateTool(
        docker_image_url="busybox:latest",
        instance_name_on_toolbox="My Tool",
        account_tool_instance_id="ati-7",
    )
    spec = decide.tool_spec(command)
    return groups.ServerState(group_id="legacy", spec=spec, replicas=replicas, generation=1)


def instance(state: containers.State) -> containers.Instance:
    return containers.Instance(replica=0, container_id="c0ffee", container_name="x", state=state)


# The client, generic: any path, JSON both ways.


async def test_the_client_returns_the_decoded_answer(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    _, url = stand_in
    client = backend.BackendClient(url + "/", TOKEN, session)

    assert await client.post("/echo", {"agentId": "a"}) == {"got": {"agentId": "a"}}


async def test_the_client_retries_a_5xx_then_answers(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.statuses = [502, 503]
    client = backend.BackendClient(url, TOKEN, session)

    answer = await client.post_with_retries("heartbeat", {}, attempts=3, first_delay_s=0.01)

    assert (answer, len(recorder.bodies)) == ({"ok": True}, 3)


async def test_the_client_does_not_retry_a_refusal_and_never_echoes_the_token(
    stand_in: tuple[StandIn, str], session: aiohttp.ClientSession
) -> None:
    recorder, url = stand_in
    recorder.statuses = [403, 403]
    client = backend.BackendClient(url, TOKEN, session)

    with pytest.raises(backend.BackendError) as raised:
        await client.post_with_retries("heartbeat", {"secret": "s3"}, attempts=3, first_delay_s=0)

    assert (raised.value.status, len(recorder.bodies)) == (403, 1)
    assert TOKEN not in str(raised.value) and "s3" not in str(raised.value)


async def test_the_client_gives_up_after_the_attempts(session: aiohttp.ClientSession) -> None:
    client = backend.BackendClient(f"http://127.0.0.1:{closed_port()}", TOKEN, session)

    with pytest.raises(backend.BackendError, match="could not reach") as raised:
        await client.post_with_retries("heartbeat", {}, attempts=2, first_delay_s=0)

    assert raised.value.status is None and TOKEN not in str(raised.value)
    # aiohttp's own exception (which carries the request's headers) is not kept as the cause.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
