"""A small MCP server for the tests: the official SDK's Streamable HTTP transport at /mcp, one
tool (`echo`), or its stdio transport with more tools. It runs inside the image
`tests/support/mcp_image.py` builds."""

# Switches, from the environment:
#   PORT               the port it listens on, on 0.0.0.0 (default 8000)
#   MCP_CRASH_AFTER_S  exit with status 3 after that many seconds
#   MCP_HANG=1         accept TCP connections but never answer them (no HTTP at all)
#   MCP_REQUIRE_TOKEN  answer 401 to any request without `Authorization: Bearer <value>`
#   MCP_ALLOCATE_MB    hold that much memory, every byte written, from the start (OOM tests)
#   MCP_LEGACY_ONLY=1  answer `server/discover` as a server of 2025-11-25 or earlier would:
#                      HTTP 200 with JSON-RPC error -32601; everything else as usual
#   MCP_TRANSPORT=stdio  speak MCP on standard input and output (the SDK's stdio transport)
#                      instead of HTTP, with three more tools: `wait` (answer `text` after
#                      `seconds`; says "cancelled wait: <text>" if cancelled), `count`
#                      (report progress 1..`to`, pausing `pause` s after each, then answer
#                      `text`) and `roots` (ask the client for its roots, a server-to-client
#                      request, and answer "roots: <n>" or "refused: <the error>"); each tool
#                      call says "called <tool>: <text>" on standard error
# Always: a DELETE that closes a session logs "session closed: <id>" (standard error), so a
# test can read in `docker logs` that a client ended its session. At start it logs
# "config at start: <sha256 of /etc/mcp/config.json, or absent>", and on SIGHUP
# "config reloaded: <the same>", so a test can tell that the file and the signal arrived.

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import threading
from typing import Any, NoReturn

SERVER_NAME = "dtma-test-mcp"
SERVER_VERSION = "1.0.0"
CRASH_EXIT_CODE = 3
MIB = 1024 * 1024
CONFIG_PATH = "/etc/mcp/config.json"


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    watch_config()
    _ballast = allocate(int(os.environ.get("MCP_ALLOCATE_MB", "0")))  # held until exit
    if crash_after := os.environ.get("MCP_CRASH_AFTER_S"):
        schedule_crash(float(crash_after))
    if os.environ.get("MCP_HANG") == "1":
        hang(port)
    if os.environ.get("MCP_TRANSPORT") == "stdio":
        serve_stdio()
    serve(port, os.environ.get("MCP_REQUIRE_TOKEN"))


def watch_config() -> None:
    say(f"config at start: {config_digest()}")
    signal.signal(signal.SIGHUP, lambda _signum, _frame: say(f"config reloaded: {config_digest()}"))


def config_digest() -> str:
    try:
        with open(CONFIG_PATH, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest()
    except FileNotFoundError:
        return "absent"


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

    app = record_session_closes(
        server.streamable_http_app(streamable_http_path="/mcp", host="0.0.0.0")
    )
    if os.environ.get("MCP_LEGACY_ONLY") == "1":
        app = refuse_discover(app)
    guarded = app if token is None else require_bearer(app, token)
    uvicorn.run(guarded, host="0.0.0.0", port=port, log_level="info")


def serve_stdio() -> NoReturn:
    # The SDK reads the tools' annotations (strings here) in this module's globals: it finds
    # `Context` there to pass a tool its request's context.
    global Context
    import anyio
    from mcp.server.mcpserver import Context, MCPServer

    server: MCPServer[Any] = MCPServer(SERVER_NAME, version=SERVER_VERSION)

    @server.tool()
    async def echo(text: str) -> str:
        """Answer with `text`, unchanged."""
        say(f"called echo: {text}")
        return text

    @server.tool()
    async def wait(text: str, seconds: float) -> str:
        """Answer with `text` after `seconds`."""
        say(f"called wait: {text}")
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            say(f"cancelled wait: {text}")
            raise
        return text

    @server.tool()
    async def count(text: str, to: int, pause: float, ctx: Context) -> str:
        """Report progress 1..`to`, then answer with `text`."""
        say(f"called count: {text}")
        for step in range(1, to + 1):
            await ctx.report_progress(step, to)
            await anyio.sleep(pause)
        return text

    @server.tool()
    async def roots(text: str, ctx: Context) -> str:
        """Ask the client for its roots."""
        say(f"called roots: {text}")
        try:
            listed = await ctx.session.list_roots()
        except Exception as exc:  # noqa: BLE001 - the answer says what happened
            return f"refused: {exc}"
        return f"roots: {len(listed.roots)}"

    server.run("stdio")
    sys.exit(0)


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


def refuse_discover(app: Any) -> Any:
    """Wrap an ASGI app: a `server/discover` POST (by its Mcp-Method header or its body's method)
    gets JSON-RPC's "method not found", as from a server that predates the 2026-07-28 revision."""

    async def legacy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        messages, body = await read_body(receive)
        method, request_id = rpc_method(body)
        routed = dict(scope["headers"]).get(b"mcp-method")
        if routed != b"server/discover" and method != "server/discover":
            await app(scope, replay(messages, receive), send)
            return
        say("refused server/discover")
        error = {"code": -32601, "message": "Method not found"}
        await send_json(send, 200, {"jsonrpc": "2.0", "id": request_id, "error": error})

    return legacy


async def read_body(receive: Any) -> tuple[list[dict[str, Any]], bytes]:
    """Every `http.request` message of a request's body, and the body they carry."""
    messages: list[dict[str, Any]] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    return messages, b"".join(m.get("body", b"") for m in messages)


def replay(messages: list[dict[str, Any]], receive: Any) -> Any:
    """A `receive` that hands out `messages` again, then whatever `receive` brings."""
    pending = list(messages)

    async def replayed() -> dict[str, Any]:
        return pending.pop(0) if pending else await receive()

    return replayed


def rpc_method(body: bytes) -> tuple[str | None, Any]:
    """A JSON-RPC request's method and id; (None, None) for anything else."""
    try:
        message = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(message, dict):
        return None, None
    return message.get("method"), message.get("id")


async def send_json(send: Any, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def record_session_closes(app: Any) -> Any:
    """Wrap an ASGI app: say which session a DELETE closed, once the app has answered 2xx."""

    async def recorded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session_id = dict(scope.get("headers", [])).get(b"mcp-session-id")
        if scope["type"] != "http" or scope["method"] != "DELETE" or session_id is None:
            await app(scope, receive, send)
            return

        async def noting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                outcome = "closed" if 200 <= status < 300 else f"not closed (HTTP {status})"
                say(f"session {outcome}: {session_id.decode(errors='replace')}")
            await send(message)

        await app(scope, receive, noting)

    return recorded


def say(message: str) -> None:
    print(f"{SERVER_NAME}: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
