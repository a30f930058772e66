"""JSON-RPC messages as the stdio bridge sorts and rewrites them. Pure: no I/O here."""

from __future__ import annotations

import json
from typing import Any, Final, Literal

Message = dict[str, Any]
Kind = Literal["request", "notification", "response", "invalid"]

# JSON-RPC's own codes, and the one MCP's SDKs use for a connection that closed under a request.
METHOD_NOT_FOUND: Final = -32601
INVALID_REQUEST: Final = -32600
CONNECTION_CLOSED: Final = -32000
REQUEST_CANCELLED: Final = -32800  # LSP's code, as MCP's SDKs use it
HANDSHAKE_ERA: Final = "2025-11-25"  # the revision the bridge initializes in unless asked another
BRIDGE_INFO: Final = {"name": "dtma-stdio-bridge", "version": "1"}


def kind(message: object) -> Kind:
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return "invalid"
    has_id = isinstance(message.get("id"), str | int) and not isinstance(message.get("id"), bool)
    if isinstance(message.get("method"), str):
        return "request" if has_id else "notification"
    if has_id and ("result" in message or "error" in message):
        return "response"
    return "invalid"


def decoded(line: bytes) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None


def encoded(message: Message) -> bytes:
    """One line: JSON never holds a raw newline, so a message is exactly one line of stdio."""
    return json.dumps(message, separators=(",", ":")).encode()


def request(request_id: int, method: str, params: Message) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def notification(method: str, params: Message | None = None) -> Message:
    message: Message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def error(request_id: object, code: int, text: str) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}}


def with_id(message: Message, request_id: object) -> Message:
    return {**message, "id": request_id}


def progress_token(message: Message) -> str | int | None:
    """The `_meta.progressToken` a request carries, if any."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    return token if isinstance(token, str | int) and not isinstance(token, bool) else None


def with_progress_token(message: Message, token: str | int) -> Message:
    """`message` with its `_meta.progressToken` replaced (the other keys left as they were)."""
    params = dict(message.get("params") or {})
    params["_meta"] = {**(params.get("_meta") or {}), "progressToken": token}
    return {**message, "params": params}


def cancelled_request(message: Message) -> object:
    params = message.get("params")
    return params.get("requestId") if isinstance(params, dict) else None


def initialize_params(asked: object) -> Message:
    """What the bridge initializes the server with: the first client's protocol version, and no
    client capability (server-to-client requests are refused, so none is offered)."""
    version = asked.get("protocolVersion") if isinstance(asked, dict) else None
    return {
        "protocolVersion": version if isinstance(version, str) else HANDSHAKE_ERA,
        "capabilities": {},
        "clientInfo": BRIDGE_INFO,
    }
