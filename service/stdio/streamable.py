"""MCP Streamable HTTP in front of a stdio bridge: POST a message, GET a session's stream of
server-wide notifications, DELETE a session. Answers are JSON, or an event stream for a request
that asked for progress. The bridge presents the server in the handshake era (2025-11-25)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from service.stdio import messages
from service.stdio.bridge import Call, SessionLostError, StdioBridge
from service.stdio.messages import Message

SESSION_HEADER: Final = "Mcp-Session-Id"
INITIALIZE_TIMEOUT_S: Final = 30.0
EVENT_STREAM: Final = "text/event-stream"
CLIENT_CHECK_S: Final = 1.0  # how often a waiting call looks whether its client is still there
NO_DISCOVER: Final = "server/discover: this server speaks the initialize handshake (2025-11-25)"


def _rpc_error(status: int, code: int, text: str, request_id: object = None) -> web.Response:
    return web.json_response(messages.error(request_id, code, text), status=status)


def _no_replica() -> web.Response:
    answer = _rpc_error(503, messages.CONNECTION_CLOSED, "the replica is not running")
    answer.headers["Retry-After"] = "1"
    return answer


def _unknown_session() -> web.Response:
    return _rpc_error(404, messages.CONNECTION_CLOSED, "no such session (it may have been lost)")


async def _message(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    except ValueError:
        return None


async def post(bridge: StdioBridge | None, request: web.Request) -> web.StreamResponse:
    message = await _message(request)
    kind = messages.kind(message)
    if kind == "invalid" or not isinstance(message, dict):
        return _rpc_error(400, messages.INVALID_REQUEST, "not a JSON-RPC 2.0 message")
    if kind == "request" and message["method"] == "server/discover":
        answer = messages.error(message["id"], messages.METHOD_NOT_FOUND, NO_DISCOVER)
        return web.json_response(answer)
    if kind == "request" and message["method"] == "initialize":
        return await _initialize(bridge, message)
    session_id = request.headers.get(SESSION_HEADER)
    if session_id is None:
        return _rpc_error(400, messages.INVALID_REQUEST, f"{SESSION_HEADER} is required")
    if bridge is None or bridge.session(session_id) is None:
        return _unknown_session()
    try:
        if kind == "request":
            return await _call(bridge, session_id, message, request)
        if kind == "notification":
            await bridge.notify(session_id, message)
    except SessionLostError:
        return _unknown_session()
    return web.Response(status=202, text="")  # a response: no server request is passed on


async def _initialize(bridge: StdioBridge | None, message: Message) -> web.Response:
    if bridge is None or bridge.lost.is_set():
        return _no_replica()
    try:
        answer = await bridge.initialize(message.get("params"), INITIALIZE_TIMEOUT_S)
        session_id = bridge.open_session() if "result" in answer else None
    except SessionLostError:
        return _no_replica()
    except TimeoutError:
        text = "the server did not answer initialize in time"
        return _rpc_error(504, messages.CONNECTION_CLOSED, text, message["id"])
    headers = {SESSION_HEADER: session_id} if session_id else None
    return web.json_response(messages.with_id(answer, message["id"]), headers=headers)


async def _call(
    bridge: StdioBridge, session_id: str, message: Message, request: web.Request
) -> web.StreamResponse:
    streamed = messages.progress_token(message) is not None and EVENT_STREAM in request.headers.get(
        "Accept", ""
    )
    call = await bridge.start(session_id, message)
    try:
        if not streamed:
            answered = [message async for message in _while_connected(call, request)]
            if not answered or messages.kind(answered[-1]) != "response":
                return web.Response(status=499, text="")  # nobody is there to read it
            return web.json_response(answered[-1])  # progress without a stream goes nowhere
        response = await _event_stream(request)
        async for each in _while_connected(call, request):
            await response.write(_event(each))
        return response
    finally:
        await bridge.abandon(call, "the client went away")  # nothing if it was answered


async def _while_connected(call: Call, request: web.Request) -> AsyncIterator[Message]:
    """The call's messages, until its answer or until the client has gone: aiohttp does not
    cancel a handler whose client went away, and the server should stop working for nobody."""
    while True:
        try:  # a get cancelled by the timeout takes nothing off the queue
            message = await asyncio.wait_for(call.inbox.get(), CLIENT_CHECK_S)
        except TimeoutError:
            if request.transport is None or request.transport.is_closing():
                return
            continue
        yield message
        if messages.kind(message) == "response":
            return


async def get(bridge: StdioBridge | None, request: web.Request) -> web.StreamResponse:
    session_id = request.headers.get(SESSION_HEADER)
    if session_id is None:
        return _rpc_error(400, messages.INVALID_REQUEST, f"{SESSION_HEADER} is required")
    session = bridge.session(session_id) if bridge is not None else None
    if session is None:
        return _unknown_session()
    if session.stream is not None:
        return _rpc_error(409, messages.INVALID_REQUEST, "this session has a stream open already")
    stream: asyncio.Queue[Message | None] = asyncio.Queue()
    session.stream = stream
    response = await _event_stream(request)
    try:
        while (each := await stream.get()) is not None:
            await response.write(_event(each))
    finally:
        if session.stream is stream:
            session.stream = None
    return response


async def delete(bridge: StdioBridge | None, request: web.Request) -> web.StreamResponse:
    session_id = request.headers.get(SESSION_HEADER)
    if session_id is None:
        return _rpc_error(400, messages.INVALID_REQUEST, f"{SESSION_HEADER} is required")
    if bridge is None or not await bridge.close_session(session_id):
        return _unknown_session()
    return web.Response(status=200, text="")


async def _event_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": EVENT_STREAM, "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    return response


def _event(message: Message) -> bytes:
    return b"event: message\ndata: " + messages.encoded(message) + b"\n\n"
