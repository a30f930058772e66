"""The bridge's reading and rewriting of JSON-RPC messages. Pure."""

from __future__ import annotations

from service.stdio import messages


def test_sorts_requests_notifications_responses_and_the_rest() -> None:
    assert messages.kind({"jsonrpc": "2.0", "id": 1, "method": "ping"}) == "request"
    assert messages.kind({"jsonrpc": "2.0", "id": "x", "result": {}}) == "response"
    assert messages.kind({"jsonrpc": "2.0", "id": 2, "error": {"code": 1}}) == "response"
    assert messages.kind({"jsonrpc": "2.0", "method": "notifications/x"}) == "notification"
    for other in (
        None,
        [],
        {"id": 1, "method": "ping"},  # not JSON-RPC 2.0
        {"jsonrpc": "2.0", "id": 1},  # neither a method nor an answer
        {"jsonrpc": "2.0", "id": None, "result": {}},  # an answer to nothing
        {"jsonrpc": "2.0", "id": True, "result": {}},  # a boolean is no id
    ):
        assert messages.kind(other) == "invalid", other


def test_a_message_is_one_line_whatever_its_strings_hold() -> None:
    line = messages.encoded({"jsonrpc": "2.0", "method": "m", "params": {"text": "a\nb"}})
    assert b"\n" not in line
    assert messages.decoded(line) == {"jsonrpc": "2.0", "method": "m", "params": {"text": "a\nb"}}
    assert messages.decoded(b"not json") is None


def test_a_progress_token_is_replaced_and_the_rest_of_meta_kept() -> None:
    request = messages.request(
        5, "tools/call", {"name": "t", "_meta": {"progressToken": 5, "k": 1}}
    )
    assert messages.progress_token(request) == 5
    rewritten = messages.with_progress_token(request, "dtma-9")
    assert rewritten["params"] == {"name": "t", "_meta": {"progressToken": "dtma-9", "k": 1}}
    assert request["params"]["_meta"]["progressToken"] == 5  # the client's request is untouched
    assert messages.progress_token(messages.request(1, "tools/list", {})) is None


def test_the_bridge_initializes_in_the_first_clients_version_offering_no_capability() -> None:
    asked = {"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}}, "clientInfo": {}}
    params = messages.initialize_params(asked)
    assert params["protocolVersion"] == "2025-06-18"
    assert params["capabilities"] == {}
    assert messages.initialize_params(None)["protocolVersion"] == messages.HANDSHAKE_ERA
