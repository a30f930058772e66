"""`GET /events/stream`: Server-Sent Events of the log, live and resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, TypeAlias

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from tests.conftest import AUTH

Client: TypeAlias = TestClient[web.Request, web.Application]

STREAM = "/events/stream"
BREAKER = "/health/circuit-breaker"
READ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Frame:
    id: str | None
    event: str | None
    data: str
    raw: str

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


class SseReader:
    """A minimal parser of the SSE wire format (WHATWG HTML, "event stream interpretation")."""

    def __init__(self, response: ClientResponse) -> None:
        self.response = response

    async def next_frame(self) -> Frame:
        """The next dispatched frame; comments (keep-alives) are skipped.

        Raises TimeoutError after READ_TIMEOUT_S, so a missing event fails instead of hanging.
        """
        return await asyncio.wait_for(self._read_frame(), READ_TIMEOUT_S)

    async def frames(self, count: int) -> list[Frame]:
        return [await self.next_frame() for _ in range(count)]

    async def _read_frame(self) -> Frame:
        fields: dict[str, list[str]] = {}
        raw: list[str] = []
        while True:
            line_bytes = await self.response.content.readline()
            if not line_bytes:
                raise EOFError("the event stream ended")
            line = line_bytes.decode("utf-8").rstrip("\r\n")
            if not line:
                if "data" in fields:
                    return Frame(
                        id=fields.get("id", [None])[-1],
                        event=fields.get("event", [None])[-1],
                        data="\n".join(fields["data"]),
                        raw="\n".join(raw) + "\n\n",
                    )
                fields, raw = {}, []
                continue
            raw.append(line)
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))


async def configure(client: Client, failure_threshold: int, server: str | None = None) -> int:
    body: dict[str, Any] = {"failureThreshold": failure_threshold}
    if server is not None:
        body["mcpServerId"] = server
    response = await client.post(BREAKER, json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    position: int = (await response.json())["position"]
    return position


async def open_stream(client: Client, query: str = "", **headers: str) -> SseReader:
    response = await client.get(STREAM + query, headers={**AUTH, **headers})
    assert response.status == 200, await response.text()
    return SseReader(response)


async def test_answers_with_an_event_stream_that_is_not_cached(client: Client) -> None:
    reader = await open_stream(client)
    try:
        assert reader.response.content_type == "text/event-stream"
        assert reader.response.headers["Cache-Control"] == "no-cache"
    finally:
        reader.response.close()


async def test_frames_carry_the_position_as_id_the_type_as_event_and_the_event_as_data(
    client: Client,
) -> None:
    await configure(client, 4)
    await configure(client, 5, server="search")
    listed = (await (await client.get("/events", headers=AUTH)).json())["events"]

    reader = await open_stream(client)
    try:
        frames = await reader.frames(2)
    finally:
        reader.response.close()

    for frame, event in zip(frames, listed, strict=True):
        assert frame.id == str(event["position"])
        assert frame.event == "CircuitBreakerConfigured"
        assert frame.json() == event
        assert frame.raw == f"id: {frame.id}\nevent: {frame.event}\ndata: {frame.data}\n\n"
        assert "\n" not in frame.data


async def test_delivers_events_appended_after_connecting(client: Client) -> None:
    await configure(client, 4)
    reader = await open_stream(client)
    try:
        assert (await reader.next_frame()).id == "1"

        position = await configure(client, 7, server="live")
        frame = await reader.next_frame()
    finally:
        reader.response.close()

    assert frame.id == str(position)
    assert frame.json()["data"]["failure_threshold"] == 7


async def test_waits_on_an_empty_log_and_delivers_the_first_event(client: Client) -> None:
    reader = await open_stream(client)
    try:
        pending = asyncio.create_task(reader.next_frame())
        await configure(client, 3)
        frame = await pending
    finally:
        reader.response.close()

    assert frame.id == "1"


async def test_resuming_with_last_event_id_misses_nothing_and_repeats_nothing(
    client: Client,
) -> None:
    for threshold in range(1, 6):
        await configure(client, threshold)
    received: list[int] = []

    first = await open_stream(client)
    try:
        received += [int(f.id or "0") for f in await first.frames(3)]
    finally:
        first.response.close()
    for threshold in range(6, 9):
        await configure(client, threshold, server="after-disconnect")
    head = 8

    second = await open_stream(client, **{"Last-Event-ID": str(received[-1])})
    try:
        while not received or received[-1] < head:
            received.append(int((await second.next_frame()).id or "0"))
        live = await configure(client, 9)
        received.append(int((await second.next_frame()).id or "0"))
    finally:
        second.response.close()

    assert received == list(range(1, live + 1))


async def test_starts_after_the_after_query_parameter(client: Client) -> None:
    for threshold in (3, 4, 5):
        await configure(client, threshold)

    reader = await open_stream(client, "?after=2")
    try:
        frame = await reader.next_frame()
    finally:
        reader.response.close()

    assert frame.id == "3"


async def test_last_event_id_wins_over_the_after_query_parameter(client: Client) -> None:
    for threshold in (3, 4, 5):
        await configure(client, threshold)

    reader = await open_stream(client, "?after=0", **{"Last-Event-ID": "2"})
    try:
        frame = await reader.next_frame()
    finally:
        reader.response.close()

    assert frame.id == "3"


async def test_filters_the_stream_by_stream_id(client: Client) -> None:
    await configure(client, 3)
    await configure(client, 4, server="search")
    await configure(client, 5)
    await configure(client, 6, server="search")
    stream_id = "breaker-search"

    reader = await open_stream(client, f"?stream={stream_id}")
    try:
        frames = await reader.frames(2)
    finally:
        reader.response.close()

    assert [f.id for f in frames] == ["2", "4"]
    assert {f.json()["streamId"] for f in frames} == {stream_id}
