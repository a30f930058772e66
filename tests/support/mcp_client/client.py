"""An MCP client made with the official SDK's Streamable HTTP client, for the tests. It runs
with the SDK on PYTHONPATH (`tests/support/mcp_clients.py` starts it), not in the venv.

    client.py URL TOKEN CALLS    CALLS: JSON list of [tool, {arguments}], made all at once

It says "initialized" on a line once its session is open, then prints one JSON line: for each
call in order, {"text": <the answer's text>} or {"error": <what the SDK raised>}.
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
        results = await asyncio.gather(
            *(session.call_tool(name, arguments) for name, arguments in calls),
            return_exceptions=True,
        )
    print(json.dumps([outcome(result) for result in results]), flush=True)


def outcome(result: Any) -> dict[str, str]:
    if isinstance(result, BaseException):
        return {"error": f"{type(result).__name__}: {result}"}
    if result.is_error:
        return {"error": result.content[0].text}
    return {"text": result.content[0].text}


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
