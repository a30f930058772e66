"""A running container's stdin and stdout, attached without a TTY: lines in, lines out.

stderr is never asked for (and a stray stderr frame is dropped): it stays in the container's log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiodocker
import aiohttp
from aiodocker.stream import Stream

from service.docker.errors import DockerUnavailableError, translated

logger = logging.getLogger(__name__)

STDOUT = 1
# A line longer than this is not a protocol message: it is dropped, not buffered without end.
MAX_LINE_BYTES = 16 * 1024 * 1024


class StdioAttachment:
    """One attach to a container's stdin and stdout; `close()` detaches (stdin stays open in
    the container when it was created with `open_stdin`)."""

    def __init__(self, stream: Stream, container_id: str) -> None:
        self._stream = stream
        self.container_id = container_id

    @classmethod
    async def open(cls, docker: aiodocker.Docker, container_id: str) -> StdioAttachment:
        stream = docker.containers.container(container_id).attach(stdin=True, stdout=True)
        short = container_id[:12]
        with translated(f"attach to container {short}", missing=f"container {short}"):
            await stream.__aenter__()
        return cls(stream, container_id)

    async def send(self, line: bytes) -> None:
        """Write one line (a newline is added) to the container's stdin."""
        try:
            await self._stream.write_in(line + b"\n")
        except (OSError, RuntimeError, aiohttp.ClientError) as exc:
            raise DockerUnavailableError(f"cannot write to {self.container_id[:12]}") from exc

    async def lines(self) -> AsyncIterator[bytes]:
        """The container's stdout, line by line (without the newline), until it closes."""
        pending = bytearray()
        while True:
            try:
                message = await self._stream.read_out()
            except (OSError, aiohttp.ClientError) as exc:
                logger.info("attach to %s ended: %s", self.container_id[:12], exc)
                return
            if message is None:
                return
            if message.stream != STDOUT:
                continue
            pending.extend(message.data)
            *complete, rest = pending.split(b"\n")
            pending = bytearray(rest)
            for line in complete:
                yield bytes(line)
            if len(pending) > MAX_LINE_BYTES:
                logger.warning("dropped an over-long line from %s", self.container_id[:12])
                pending.clear()

    async def close(self) -> None:
        await self._stream.close()
