"""The log over HTTP: `GET /events` pages, `GET /events/stream` (SSE). (The audit routes are in
service/api/audit.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from eventstore.records import RecordedEvent
from service import errors
from service.api import routes, schemas, wire
from service.api.keys import store_key, streams_key
from service.api.middlewares import actor_key
from service.api.routes import Param, Reply, Route
from service.api.wire import MAX_INTEGER, query_int

MAX_PAGE = 1_000
KEEPALIVE_S = 15.0


def event_record(event: RecordedEvent) -> schemas.EventRecord:
    return schemas.EventRecord(
        position=event.position,
        stream_id=event.stream_id,
        version=event.version,
        type=event.type,
        schema_version=event.schema_version,
        data=event.data,
        metadata=event.metadata,
        recorded_at=event.recorded_at,
        hash=event.hash,
    )


def event_json(event: RecordedEvent) -> dict[str, Any]:
    """An event as `GET /events`, the SSE stream and `dtma events` show it."""
    return event_record(event).wire()


async def list_events(request: web.Request) -> web.Response:
    after = query_int(request, "after", 0)
    limit = query_int(request, "limit", 100, low=1, high=MAX_PAGE)
    page = await request.app[store_key].read_all(after, limit, request.query.get("stream"))
    next_after = page[-1].position if page else after
    return wire.answer(schemas.EventPage(events=[event_record(e) for e in page], next=next_after))


def resume_position(request: web.Request) -> int:
    """`Last-Event-ID` (a reconnecting EventSource) wins over `?after=`."""
    last = request.headers.get("Last-Event-ID")
    if last is None:
        return query_int(request, "after", 0)
    if not is_position(last):
        raise errors.ValidationFailedError(
            "Last-Event-ID must be an event position",
            details=[{"field": "Last-Event-ID", "message": "must be a non-negative integer"}],
        )
    return int(last)


def is_position(text: str) -> bool:
    """A non-negative 64-bit integer in ASCII digits ("²" is a digit to str.isdigit)."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_INTEGER


async def stream_events(request: web.Request) -> web.StreamResponse:
    stream_filter = request.query.get("stream")

    def frame(event: RecordedEvent) -> bytes | None:
        if stream_filter is None or event.stream_id == stream_filter:
            return sse_frame(event)
        return None

    return await serve_sse(request, frame)


async def serve_sse(
    request: web.Request, frame: Callable[[RecordedEvent], bytes | None]
) -> web.StreamResponse:
    """Follow the log from the resume position, sending what `frame` makes of each event,
    while the caller's token has a stream slot free (else 429)."""
    after = resume_position(request)
    with request.app[streams_key].held(request.get(actor_key, "anonymous")):
        return await _follow(request, frame, after)


async def _follow(
    request: web.Request, frame: Callable[[RecordedEvent], bytes | None], after: int
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    keepalive = asyncio.create_task(_keep_alive(response))
    try:
        async for event in request.app[store_key].subscribe(after):
            if (data := frame(event)) is not None:
                await response.write(data)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        keepalive.cancel()
        await asyncio.gather(keepalive, return_exceptions=True)
    return response


def sse_frame(event: RecordedEvent) -> bytes:
    return sse_message(event, event_json(event))


def sse_message(event: RecordedEvent, body: Mapping[str, Any]) -> bytes:
    """One SSE message for `event`: its position as the id (what Last-Event-ID resumes from),
    its type as the event name and `body` as compact JSON."""
    data = json.dumps(body, separators=(",", ":"))
    return f"id: {event.position}\nevent: {event.type}\ndata: {data}\n\n".encode()


async def _keep_alive(response: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            await response.write(b": keep-alive\n\n")


AFTER = Param("after", "query", routes.POSITION_SCHEMA, "start after this position")
STREAM = Param("stream", "query", {"type": "string"}, "only this stream's events")
LAST_EVENT_ID = Param(
    "Last-Event-ID",
    "header",
    {"type": "string", "pattern": "^[0-9]{1,19}$"},
    "a reconnecting EventSource's last position; wins over `after`",
)
SSE = "text/event-stream"
STREAM_FAILURES = routes.failures(401, 422, 429, 503)

ROUTES = (
    Route(
        "GET",
        "/events",
        list_events,
        "A page of the log in global order",
        {
            **routes.ok("the events after `after`", schemas.EventPage),
            **routes.failures(401, 422, 503),
        },
        params=(
            AFTER,
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                "page size",
            ),
            STREAM,
        ),
        tag="events",
    ),
    Route(
        "GET",
        "/events/stream",
        stream_events,
        "Server-Sent Events: every new event, `id:` = its position; resumable",
        {200: Reply("an endless event stream", media_type=SSE), **STREAM_FAILURES},
        params=(AFTER, STREAM, LAST_EVENT_ID),
        tag="events",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
