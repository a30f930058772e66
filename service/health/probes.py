"""One health probe of one replica: MCP over Streamable HTTP (either era), an HTTP GET or a TCP
connect. No scheduling and no Docker here; a probe never raises for what the network does."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final, Literal

import aiohttp

logger = logging.getLogger(__name__)

Era = Literal["2026-07-28", "2025-11-25"]
MODERN: Final[Era] = "2026-07-28"
LEGACY: Final[Era] = "2025-11-25"

REQUEST_ID: Final = 1
DETAIL_CHARS: Final = 200
MAX_ANSWER_BYTES: Final = 1024 * 1024
CREDENTIAL_STATUSES: Final = frozenset({401, 403})
# Statuses with which a server that does not speak the 2026-07-28 revision turns discover away.
OTHER_ERA_STATUSES: Final = frozenset({400, 404, 405, 406})


def _request(method: str, params: dict[str, Any]) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": REQUEST_ID, "method": method, "params": params}
    ).encode()


# The exact form mcp SDK 2.3.0 answers: without the routing headers or either _meta key it
# takes the request for a legacy one (400 "Missing session ID", or -32602).
DISCOVER: Final = _request(
    "server/discover",
    {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    },
)
DISCOVER_HEADERS: Final = {"Mcp-Protocol-Version": MODERN, "Mcp-Method": "server/discover"}
CLIENT_INFO: Final = {"name": "dtma-probe", "version": "1"}
INITIALIZE: Final = _request(
    "initialize", {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO}
)
POST_HEADERS: Final = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str | None = None
    era: Era | None = None
    timed_out: bool = False


class _MalformedAnswerError(Exception):
    """The server answered, but not with what the protocol says."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    session_id: str | None
    reply: dict[str, Any] | None  # the JSON-RPC response to our request; read for 2xx only


_FAILURES: Final = (aiohttp.ClientError, OSError, TimeoutError, _MalformedAnswerError)


async def probe_mcp(
    session: aiohttp.ClientSession, url: str, timeout_s: float, era: Era | None = None
) -> ProbeResult:
    """`server/discover`, falling back to `initialize` (whose session is then closed with DELETE);
    `era=LEGACY` goes straight to `initialize`. All of it within `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        async with asyncio.timeout_at(deadline):
            result, session_id = await _handshake(session, url, era)
    except _FAILURES as exc:
        return _failed(exc, timeout_s)
    if session_id is not None:
        await _close_session(session, url, session_id, deadline)
    return result


async def probe_http(session: aiohttp.ClientSession, url: str, timeout_s: float) -> ProbeResult:
    """A GET that must answer 2xx itself: a redirect is not followed, and fails."""

    async def get() -> ProbeResult:
        async with session.get(url, allow_redirects=False) as response:
            return _status_result(response.status)

    return await _bounded(get, timeout_s)


async def probe_tcp(host: str, port: int, timeout_s: float) -> ProbeResult:
    """A connection that opens, closed again at once."""

    async def connect() -> ProbeResult:
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        with suppress(OSError):  # it connected: that is all this probe asks
            await writer.wait_closed()
        return ProbeResult(ok=True)

    return await _bounded(connect, timeout_s)


async def _handshake(
    session: aiohttp.ClientSession, url: str, era: Era | None
) -> tuple[ProbeResult, str | None]:
    """The verdict, and the id of a session the server opened for it, if any."""
    if era != LEGACY:
        verdict = _discovered(await _post(session, url, DISCOVER, DISCOVER_HEADERS))
        if verdict is not None:
            return verdict, None
    answer = await _post(session, url, INITIALIZE, {})
    return _initialized(answer), answer.session_id


def _discovered(answer: _Answer) -> ProbeResult | None:
    """The verdict on a discover answer; None when the server speaks an older era."""
    if answer.status in CREDENTIAL_STATUSES:
        return _credentials_required(answer.status)
    if answer.status in OTHER_ERA_STATUSES:
        return None
    if answer.reply is None:
        return _status_result(answer.status)
    result = answer.reply.get("result")
    if not isinstance(result, dict):
        return None  # a JSON-RPC error: method not found, missing session, bad params...
    supported = result.get("supportedVersions")
    if isinstance(supported, list) and MODERN in supported:
        return ProbeResult(ok=True, era=MODERN)
    return None  # it discovers, but advertises only handshake-era versions


def _initialized(answer: _Answer) -> ProbeResult:
    if answer.status in CREDENTIAL_STATUSES:
        return _credentials_required(answer.status)
    if answer.reply is None:
        return _status_result(answer.status)
    result = answer.reply.get("result")
    if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
        return ProbeResult(ok=True, era=LEGACY)
    error = answer.reply.get("error")
    if isinstance(error, dict):
        reason = f"JSON-RPC error {error.get('code')}: {error.get('message')}"
        return ProbeResult(ok=False, detail=_clip(reason))
    return ProbeResult(ok=False, detail="initialize answered without a protocol version")


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str]
) -> _Answer:
    """POST one request; for a 2xx, read its reply from JSON or from an event stream."""
    async with session.post(
        url, data=body, headers={**POST_HEADERS, **headers}, allow_redirects=False
    ) as response:
        session_id = response.headers.get("Mcp-Session-Id")
        if not 200 <= response.status < 300:
            return _Answer(response.status, session_id, None)
        if response.content_type == "text/event-stream":
            reply = await _reply_in_stream(response.content)
        else:
            reply = _reply_in(_decoded(await _read_capped(response.content)))
        if reply is None:
            raise _MalformedAnswerError(f"HTTP {response.status} without a JSON-RPC response")
        return _Answer(response.status, session_id, reply)


async def _reply_in_stream(stream: aiohttp.StreamReader) -> dict[str, Any] | None:
    """Read Server-Sent Events until the reply to our request; the rest is left unread."""
    data: list[str] = []
    size = 0
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # aiohttp's "Chunk too big": a line beyond its buffer
            raise _MalformedAnswerError("event stream line too long") from None
        line = raw.decode(errors="replace").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
            size += len(line)
            if size > MAX_ANSWER_BYTES:
                raise _MalformedAnswerError("event stream message too large")
        elif not line:  # a blank line ends an event; the end of the stream too
            with suppress(_MalformedAnswerError):  # events that are no message: priming, pings
                if data and (reply := _reply_in(_decoded("\n".join(data)))):
                    return reply
            if not raw:
                return None
            data, size = [], 0


async def _read_capped(stream: aiohttp.StreamReader) -> bytes:
    body = bytearray()
    async for chunk in stream.iter_any():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise _MalformedAnswerError("answer too large")
    return bytes(body)


def _decoded(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except ValueError:
        raise _MalformedAnswerError("answer is not JSON") from None


def _reply_in(decoded: object) -> dict[str, Any] | None:
    """The response to our request in a message or a batch; an error with a null id counts."""
    for message in decoded if isinstance(decoded, list) else [decoded]:
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            continue
        if message.get("id") == REQUEST_ID and ("result" in message or "error" in message):
            return message
        if message.get("id") is None and "error" in message:
            return message
    return None


async def _close_session(
    session: aiohttp.ClientSession, url: str, session_id: str, deadline: float
) -> None:
    """DELETE the session the handshake opened; best effort, before the probe's deadline."""
    try:
        async with (
            asyncio.timeout_at(deadline),
            session.delete(
                url, headers={"Mcp-Session-Id": session_id}, allow_redirects=False
            ) as response,
        ):
            if response.status >= 300:
                logger.debug("MCP session close answered HTTP %d", response.status)
    except _FAILURES as exc:
        logger.debug("MCP session close failed: %s", _described(exc))


async def _bounded(probe: Callable[[], Awaitable[ProbeResult]], timeout_s: float) -> ProbeResult:
    try:
        async with asyncio.timeout(timeout_s):
            return await probe()
    except _FAILURES as exc:
        return _failed(exc, timeout_s)


def _failed(exc: BaseException, timeout_s: float) -> ProbeResult:
    if isinstance(exc, TimeoutError):  # ours, or the session's own (aiohttp's subclass it)
        return ProbeResult(
            ok=False, detail=f"timed out after {timeout_s * 1000:.0f} ms", timed_out=True
        )
    return ProbeResult(ok=False, detail=_described(exc))


def _described(exc: BaseException) -> str:
    """A short, plain reason: no bodies, no headers."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_reason(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "malformed response body"
    if isinstance(exc, aiohttp.ClientResponseError):
        return _clip(f"bad response: {exc.message}")
    if isinstance(exc, OSError):
        return _os_reason(exc)
    if isinstance(exc, _MalformedAnswerError):
        return str(exc)
    return _clip(type(exc).__name__)


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    return _clip(exc.strerror or type(exc).__name__)


def _status_result(status: int) -> ProbeResult:
    if 200 <= status < 300:
        return ProbeResult(ok=True)
    return ProbeResult(ok=False, detail=f"HTTP {status}")


def _credentials_required(status: int) -> ProbeResult:
    return ProbeResult(ok=True, detail=f"HTTP {status}: credentials required")


def _clip(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"
