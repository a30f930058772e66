"""A client that sends its request head slowly (slowloris) is dropped after the header timeout,
by the real `dtma serve`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.conftest import isolating_labels
from tests.support.service_process import Service

TIMEOUT_S = 2
TRICKLE_S = 0.5
GIVE_UP_S = 20.0


async def test_a_request_head_trickled_in_is_cut_off_at_the_header_timeout(
    tmp_path: Path,
) -> None:
    service = Service(
        f"sqlite:///{tmp_path / 'dtma.db'}",
        tmp_path,
        isolating_labels(),
        DTMA_HEADER_TIMEOUT=str(TIMEOUT_S),
    )
    async with aiohttp.ClientSession() as http:
        await service.start(http)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        loop = asyncio.get_running_loop()
        opened = loop.time()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: dtma\r\n")
        closed = False
        while not closed and loop.time() - opened < GIVE_UP_S:
            writer.write(b"X-Slow: 1\r\n")  # never the blank line that ends the head
            try:
                closed = await asyncio.wait_for(reader.read(1024), TRICKLE_S) == b""
                closed = closed or reader.at_eof()
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
        held = loop.time() - opened
        writer.close()

        assert closed, f"still open after {held:.1f} s"
        assert TIMEOUT_S - 0.5 <= held <= TIMEOUT_S + 3, held
    finally:
        await service.stop()
