"""A TCP proxy between a client and a server that, once armed, loses one exchange: the request
before the server sees it, or the server's answer after the server acted on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.engine import make_url

CHUNK = 65_536


@dataclass(slots=True)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    answer_lost: bool = False

    def cut(self) -> None:
        self.client.close()
        self.server.close()


class LossyProxy:
    """Forwards every connection to `host:port` until `lose_request()` or `lose_answer()`
    arms it; the next matching request from any client then meets that fate, and `fired` is
    set."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._armed: tuple[str, bytes] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.fired = asyncio.Event()
        self.port = 0

    def lose_request(self, containing: bytes = b"") -> None:
        """The next request (holding `containing`) is not forwarded; its client is cut off."""
        self._armed, self.fired = ("request", containing), asyncio.Event()

    def lose_answer(self, containing: bytes = b"") -> None:
        """The next request (holding `containing`) is forwarded; the server's answer is not,
        and its client is cut off once that answer has arrived (so the server has acted on
        the request)."""
        self._armed, self.fired = ("answer", containing), asyncio.Event()

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        moved = make_url(url).set(host="127.0.0.1", port=self.port)
        return moved.render_as_string(hide_password=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self._target)
        link = _Link(writer, server_writer)
        for pump in (self._requests(reader, link), self._answers(server_reader, link)):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _requests(self, reader: asyncio.StreamReader, link: _Link) -> None:
        try:
            while data := await reader.read(CHUNK):
                fate = self._fate(data)
                if fate == "request":
                    link.cut()
                    self.fired.set()
                    return
                link.answer_lost = link.answer_lost or fate == "answer"
                link.server.write(data)
                await link.server.drain()
        except OSError:
            pass
        finally:
            link.cut()

    def _fate(self, request: bytes) -> str | None:
        if self._armed is None or self._armed[1] not in request:
            return None
        fate, self._armed = self._armed[0], None
        return fate

    async def _answers(self, reader: asyncio.StreamReader, link: _Link) -> None:
        try:
            while data := await reader.read(CHUNK):
                if link.answer_lost:
                    link.cut()
                    self.fired.set()
                    return
                link.client.write(data)
                await link.client.drain()
        except OSError:
            pass
        finally:
            link.cut()


@contextlib.asynccontextmanager
async def lossy_proxy(url: str) -> AsyncIterator[LossyProxy]:
    """A proxy in front of the server `url` names, closed afterwards."""
    parsed = make_url(url)
    proxy = LossyProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
