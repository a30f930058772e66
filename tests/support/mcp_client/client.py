"""An MCP client made with the official SDK's Streamable HTTP client, for the tests. It runs
with the SDK on PYTHONPATH (`tests/support/mcp_clients.py` starts it), not in the venv.

    client.py URL TOKEN CALLS    CALLS: JSON list of [tool, {arguments}], made all at once

It says "initialized" on a line once its session is open, then prints one JSON line: for each
call in order, {"text": <the answer's text>, "progress": [<each progress reported>]} or
{"error": <what the SDK raised>}. Every call asks for progress.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, token: str, calls: list[list[Any]]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        print("initialized", flush=True)
        outcomes = await asyncio.gather(*(call(session, name, args) for name, args in calls))
    print(json.dumps(outcomes), flush=True)


async def call(session: ClientSession, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    progress: list[float] = []

    async def on_progress(step: float, total: float | None, message: str | None) -> None:
        progress.append(step)

    try:
        result = await session.call_tool(name, arguments, progress_callback=on_progress)
    except Exception as exc:  # noqa: BLE001 - what the test wants to see
        return {"error": f"{type(exc).__name__}: {exc}"}
    if result.is_error:
        return {"error": result.content[0].text}
    return {"text": result.content[0].text, "progress": progress}


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
