"""A small MCP server for the tests: the official SDK's Streamable HTTP transport at /mcp, one
tool (`echo`). It runs inside the image `tests/support/mcp_image.py` builds."""

# Switches, from the environment:
#   PORT               the port it listens on, on 0.0.0.0 (default 8000)
#   MCP_CRASH_AFTER_S  exit with status 3 after that many seconds
#   MCP_HANG=1         accept TCP connections but never answer them (no HTTP at all)
#   MCP_REQUIRE_TOKEN  answer 401 to any request without `Authorization: Bearer <value>`
#   MCP_ALLOCATE_MB    hold that much memory, every byte written, from the start (OOM tests)

from __future__ import annotations

import os
import socket
import sys
import threading
from typing import Any, NoReturn

SERVER_NAME = "dtma-test-mcp"
SERVER_VERSION = "1.0.0"
CRASH_EXIT_CODE = 3
MIB = 1024 * 1024


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    _ballast = allocate(int(os.environ.get("MCP_ALLOCATE_MB", "0")))  # held until exit
    if crash_after := os.environ.get("MCP_CRASH_AFTER_S"):
        schedule_crash(float(crash_after))
    if os.environ.get("MCP_HANG") == "1":
        hang(port)
    serve(port, os.environ.get("MCP_REQUIRE_TOKEN"))


def allocate(megabytes: int) -> bytearray:
    """Memory the kernel really has to provide: every byte is written, not just reserved."""
    if megabytes:
        say(f"allocating {megabytes} MiB")
    return bytearray(b"\xa5") * (megabytes * MIB)


def schedule_crash(after_s: float) -> None:
    def crash() -> None:
        say(f"crashing with exit code {CRASH_EXIT_CODE} as asked")
        os._exit(CRASH_EXIT_CODE)  # from a thread, sys.exit would end only the thread

    timer = threading.Timer(after_s, crash)
    timer.daemon = True
    timer.start()


def hang(port: int) -> NoReturn:
    listener = socket.create_server(("0.0.0.0", port), backlog=64)
    say(f"hanging: accepting on port {port}, answering nothing")
    held = []
    while True:
        connection, _ = listener.accept()
        held.append(connection)  # never read, never answered, never closed


def serve(port: int, token: str | None) -> None:
    # Imported here: a hanging or crashing server need not wait for the SDK to load.
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    server: MCPServer[Any] = MCPServer(SERVER_NAME, version=SERVER_VERSION)

    @server.tool()
    async def echo(text: str) -> str:
        """Answer with `text`, unchanged."""
        return text

    app = server.streamable_http_app(streamable_http_path="/mcp", host="0.0.0.0")
    guarded = app if token is None else require_bearer(app, token)
    uvicorn.run(guarded, host="0.0.0.0", port=port, log_level="info")


def require_bearer(app: Any, token: str) -> Any:
    """Wrap an ASGI app: HTTP requests without `Authorization: Bearer <token>` get a 401."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"www-authenticate", b"Bearer"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return guarded


def say(message: str) -> None:
    print(f"{SERVER_NAME}: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
