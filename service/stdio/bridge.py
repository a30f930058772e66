"""One stdio replica shared by many MCP clients: one stdio session, its ids remapped per client.

The bridge initializes the server once and answers every client's `initialize` from that; each
client request gets a bridge-wide id (and progress token) on stdio, and its answer goes back to
that client alone under the client's own id. Server-to-client requests are refused (`ping` is
answered). When the container's stdout closes every pending call gets an error and every session
is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from service import errors
from service.stdio import messages
from service.stdio.messages import Message

if TYPE_CHECKING:
    from service.docker.attach import StdioAttachment

logger = logging.getLogger(__name__)

LOST: Final = "the replica's container stopped: its MCP session is lost"
REFUSED: Final = "DTMA's stdio bridge does not pass server-to-client requests on"
STREAM_BACKLOG: Final = 256  # notifications kept for a session's GET stream; more are dropped
# Sessions a replica keeps; past it the oldest idle one (no call, no stream) is forgotten: a
# client that never says DELETE (a probe that timed out) must not grow the bridge for ever.
MAX_SESSIONS: Final = 1024


class SessionLostError(Exception):
    """The bridge's stdio session is gone (the container stopped, or was detached)."""


@dataclass(eq=False)
class Call:
    """One client request in flight on stdio, under the bridge's id `bridge_id`."""

    bridge_id: int
    session: str | None  # None: the bridge's own (initialize, ping)
    client_id: object
    inbox: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    progress: str | None = None  # the bridge's progress token for it

    async def messages(self) -> AsyncIterator[Message]:
        """Its progress notifications, then its response (with the client's id), then stop."""
        while True:
            message = await self.inbox.get()
            yield message
            if messages.kind(message) == "response":
                return


@dataclass(eq=False)
class Session:
    """One client's MCP session (`Mcp-Session-Id`) over the shared stdio session."""

    id: str
    calls: set[int] = field(default_factory=set)
    stream: asyncio.Queue[Message | None] | None = None  # its open GET stream, if any


class StdioBridge:
    def __init__(self, attachment: StdioAttachment) -> None:
        self._attachment = attachment
        self.container_id = attachment.container_id
        self._ids = itertools.count(1)
        self._calls: dict[int, Call] = {}
        self._progress: dict[str, tuple[int, str | int]] = {}  # token -> (call, client's token)
        self._sessions: dict[str, Session] = {}
        self._handshake: asyncio.Task[Message] | None = None
        self._write = asyncio.Lock()
        self.lost = asyncio.Event()

    # -- the stdio side ------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the server's stdout until it closes; then the session is lost."""
        try:
            async for line in self._attachment.lines():
                await self._received(line)
        finally:
            self._lose()
            await self._attachment.close()

    async def _received(self, line: bytes) -> None:
        message = messages.decoded(line)
        match messages.kind(message):
            case "response":
                assert isinstance(message, dict)
                self._answered(message)
            case "request":
                assert isinstance(message, dict)
                await self._refuse_or_pong(message)
            case "notification":
                assert isinstance(message, dict)
                self._notified(message)
            case _:
                logger.debug("%s wrote a line that is not JSON-RPC", self.container_id[:12])

    def _answered(self, message: Message) -> None:
        call = self._calls.pop(message["id"], None) if isinstance(message["id"], int) else None
        if call is None:
            return  # an abandoned call's late answer
        self._forget(call)
        call.inbox.put_nowait(messages.with_id(message, call.client_id))

    async def _refuse_or_pong(self, message: Message) -> None:
        if message["method"] == "ping":
            answer: Message = {"jsonrpc": "2.0", "id": message["id"], "result": {}}
        else:
            answer = messages.error(message["id"], messages.METHOD_NOT_FOUND, REFUSED)
        await self._send(answer)

    def _notified(self, message: Message) -> None:
        if message["method"] == "notifications/progress":
            params = message.get("params") or {}
            found = self._progress.get(str(params.get("progressToken")))
            call = self._calls.get(found[0]) if found else None
            if found and call is not None:
                restored = {**params, "progressToken": found[1]}
                call.inbox.put_nowait({**message, "params": restored})
            return  # progress of nothing in flight goes nowhere
        # Not tied to one request (list_changed, log messages): about the server every session
        # shares, so to every session listening.
        for session in self._sessions.values():
            if session.stream is not None and session.stream.qsize() < STREAM_BACKLOG:
                session.stream.put_nowait(message)

    def _lose(self) -> None:
        if self.lost.is_set():
            return
        self.lost.set()
        for call in self._calls.values():
            lost = messages.error(call.client_id, messages.CONNECTION_CLOSED, LOST)
            call.inbox.put_nowait(lost)
        self._calls.clear()
        self._progress.clear()
        for session in self._sessions.values():
            if session.stream is not None:
                session.stream.put_nowait(None)
        self._sessions.clear()

    async def _send(self, message: Message) -> None:
        try:
            async with self._write:
                await self._attachment.send(messages.encoded(message))
        except errors.UnavailableError as exc:
            self._lose()
            raise SessionLostError(LOST) from exc

    # -- calls -------------------------------------------------------------------------------

    async def start(self, session: str | None, request: Message) -> Call:
        """Send `request` under a bridge-wide id; its answers arrive in the returned call."""
        if self.lost.is_set():
            raise SessionLostError(LOST)
        call = Call(next(self._ids), session, request["id"])
        sent = messages.with_id(request, call.bridge_id)
        if (token := messages.progress_token(request)) is not None:
            call.progress = f"dtma-{call.bridge_id}"
            self._progress[call.progress] = (call.bridge_id, token)
            sent = messages.with_progress_token(sent, call.progress)
        self._calls[call.bridge_id] = call
        if session is not None and session in self._sessions:
            self._sessions[session].calls.add(call.bridge_id)
        await self._send(sent)
        return call

    async def abandon(self, call: Call, reason: str = "the client went away") -> None:
        """Forget a call not answered yet, and tell the server to stop working on it."""
        if self._calls.pop(call.bridge_id, None) is None:
            return
        self._forget(call)
        cancelled = {"requestId": call.bridge_id, "reason": reason}
        if not self.lost.is_set():
            with contextlib.suppress(SessionLostError):  # then nothing is working on it
                await self._send(messages.notification("notifications/cancelled", cancelled))

    def _forget(self, call: Call) -> None:
        if call.progress is not None:
            self._progress.pop(call.progress, None)
        if call.session is not None and call.session in self._sessions:
            self._sessions[call.session].calls.discard(call.bridge_id)

    async def answer(self, request: Message, timeout_s: float) -> Message:
        """Start a bridge's own request and wait for its response, or a timeout."""
        call = await self.start(None, request)
        try:
            async with asyncio.timeout(timeout_s):
                async for message in call.messages():
                    if messages.kind(message) == "response":
                        return message
        finally:
            await self.abandon(call, "timed out")
        raise SessionLostError(LOST)  # the stream of a call always ends with its response

    # -- sessions ----------------------------------------------------------------------------

    async def initialize(self, asked: object, timeout_s: float) -> Message:
        """The server's answer to `initialize` (a result or an error): the first client's
        handshake is the bridge's; a later one is answered from it once a ping comes back."""
        if self._handshake is None:
            request = messages.request(0, "initialize", messages.initialize_params(asked))
            self._handshake = asyncio.create_task(self._initialized(request, timeout_s))
            answer = await asyncio.shield(self._handshake)
        else:
            answer = await asyncio.wait_for(asyncio.shield(self._handshake), timeout_s)
            await self.answer(messages.request(0, "ping", {}), timeout_s)
        if "result" not in answer:
            self._handshake = None  # the next client tries again
        return answer

    async def _initialized(self, request: Message, timeout_s: float) -> Message:
        try:
            answer = await self.answer(request, timeout_s)
        except (SessionLostError, TimeoutError):
            self._handshake = None
            raise
        if "result" in answer:
            await self._send(messages.notification("notifications/initialized"))
        return answer

    def open_session(self) -> str:
        if self.lost.is_set():
            raise SessionLostError(LOST)
        if len(self._sessions) >= MAX_SESSIONS:
            idle = (s.id for s in self._sessions.values() if not s.calls and s.stream is None)
            if (oldest := next(idle, None)) is not None:
                del self._sessions[oldest]
        session = Session(secrets.token_urlsafe(24))
        self._sessions[session.id] = session
        return session.id

    def session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    async def close_session(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        for bridge_id in list(session.calls):
            if (call := self._calls.get(bridge_id)) is not None:
                await self._end(call, "the client closed its session")
        if session.stream is not None:
            session.stream.put_nowait(None)
        return True

    async def notify(self, session_id: str, notification: Message) -> None:
        """A client's notification: the handshake's and roots' are the bridge's business; a
        cancellation names the bridge's id for a call of that session; the rest go on."""
        method = notification["method"]
        if method in ("notifications/initialized", "notifications/roots/list_changed"):
            return
        if method == "notifications/cancelled":
            target = messages.cancelled_request(notification)
            session = self._sessions.get(session_id)
            for bridge_id in list(session.calls if session else ()):
                call = self._calls.get(bridge_id)
                if call is not None and call.client_id == target:
                    await self._end(call, "cancelled by the client")
            return
        await self._send(notification)

    async def _end(self, call: Call, reason: str) -> None:
        """Abandon a call, and answer its HTTP request (still open, maybe) with an error."""
        await self.abandon(call, reason)
        call.inbox.put_nowait(messages.error(call.client_id, messages.REQUEST_CANCELLED, reason))
