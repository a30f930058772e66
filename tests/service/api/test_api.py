"""The HTTP API on a real SQLite file: the error shape on every route, idempotency, the breaker
command, the event log and the audit route."""

from __future__ import annotations

import asyncio
import io
from typing import Any, TypeAlias

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from tests.conftest import AUTH, TOKEN

Client: TypeAlias = TestClient[web.Request, web.Application]

BREAKER = "/health/circuit-breaker"
AUTHENTICATED_ROUTES = [
    ("GET", "/events"),
    ("GET", "/events/stream"),
    ("GET", "/audit/verify"),
    ("POST", BREAKER),
    ("GET", "/health/mcp/search"),
]
SECRET = "s3cr3t-value"


async def error_of(response: ClientResponse, status: int) -> dict[str, Any]:
    """Asserts the contract's error shape and status; returns the `error` object."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    assert "Traceback" not in text
    body = await response.json()
    assert list(body) == ["error"]
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str) and error["code"].islower()
    assert " " not in error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    return error


def fields_of(error: dict[str, Any]) -> set[str]:
    return {detail["field"] for detail in error["details"]}


async def configure(client: Client, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await client.post(BREAKER, json=body, headers={**AUTH, **headers})
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def all_events(client: Client, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"/events?limit=1000{query}", headers=AUTH)
    assert response.status == 200
    events: list[dict[str, Any]] = (await response.json())["events"]
    return events


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED_ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ],
    ids=["missing", "wrong", "longer", "no-scheme", "basic"],
)
async def test_refuses_every_authenticated_route_without_the_right_token_with_401(
    client: Client, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await client.request(method, path, json={"failureThreshold": 4}, headers=headers)

    error = await error_of(response, 401)
    assert error["code"] == "unauthorized"
    assert TOKEN not in await response.text()


async def test_refuses_an_authorization_header_that_is_not_utf8_with_401(client: Client) -> None:
    assert client.server.host is not None and client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(
            b"GET /events HTTP/1.1\r\nHost: dtma\r\nAuthorization: Bearer \xff\xfe\r\n"
            b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()

    assert answer.startswith(b"HTTP/1.1 401 "), answer
    assert b'"unauthorized"' in answer


async def test_refuses_a_request_to_an_unknown_route_without_a_token_with_401(
    client: Client,
) -> None:
    response = await client.get("/no-such-route")

    await error_of(response, 401)


async def test_healthz_needs_no_token(client: Client) -> None:
    response = await client.get("/healthz")

    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_legacy_health_answers_plain_text_ok_without_a_token(client: Client) -> None:
    response = await client.get("/health")

    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.text() == "OK"


async def test_a_valid_token_is_accepted(client: Client) -> None:
    response = await client.get("/events", headers=AUTH)

    assert response.status == 200


# -- malformed and invalid bodies --------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{", b'{"failureThreshold": 3,}', b"\xff\xfe", b"nope"])
async def test_refuses_malformed_json_with_400(client: Client, body: bytes) -> None:
    response = await client.post(
        BREAKER, data=body, headers={**AUTH, "Content-Type": "application/json"}
    )

    error = await error_of(response, 400)
    assert error["code"] == "malformed_json"


@pytest.mark.parametrize("body", [b"", b"   \n"])
async def test_refuses_an_empty_body_with_400(client: Client, body: bytes) -> None:
    response = await client.post(
        BREAKER, data=body, headers={**AUTH, "Content-Type": "application/json"}
    )

    await error_of(response, 400)


@pytest.mark.parametrize("body", [b"[]", b'[{"failureThreshold": 3}]', b'"text"', b"3", b"null"])
async def test_refuses_a_body_that_is_not_a_json_object_with_422(
    client: Client, body: bytes
) -> None:
    response = await client.post(
        BREAKER, data=body, headers={**AUTH, "Content-Type": "application/json"}
    )

    error = await error_of(response, 422)
    assert error["code"] == "validation_failed"


async def test_rejects_unknown_fields_with_422_naming_them(client: Client) -> None:
    response = await client.post(
        BREAKER, json={"failureThreshold": 3, "bogus": 1, "failure_threshold": 4}, headers=AUTH
    )

    error = await error_of(response, 422)
    assert fields_of(error) == {"bogus", "failure_threshold"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failureThreshold", "3"),
        ("failureThreshold", 3.5),
        ("failureThreshold", True),
        ("openTimeout", "30000"),
        ("circuitBreakerEnabled", "true"),
        ("circuitBreakerEnabled", 1),
        ("mcpServerId", 42),
    ],
)
async def test_rejects_wrong_types_strictly_with_422_naming_the_field(
    client: Client, field: str, value: Any
) -> None:
    response = await client.post(BREAKER, json={field: value}, headers=AUTH)

    error = await error_of(response, 422)
    assert fields_of(error) == {field}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failureThreshold", 0),
        ("failureThreshold", 1001),
        ("recoveryThreshold", 0),
        ("recoveryThreshold", -3),
        ("openTimeout", -1),
        ("openTimeout", 86_400_001),
    ],
)
async def test_rejects_out_of_range_values_with_422_naming_the_field(
    client: Client, field: str, value: int
) -> None:
    response = await client.post(BREAKER, json={field: value}, headers=AUTH)

    error = await error_of(response, 422)
    assert fields_of(error) == {field}


async def test_names_every_bad_field_at_once(client: Client) -> None:
    response = await client.post(
        BREAKER, json={"failureThreshold": 0, "openTimeout": "x", "extra": 1}, headers=AUTH
    )

    error = await error_of(response, 422)
    assert fields_of(error) == {"failureThreshold", "openTimeout", "extra"}


@pytest.mark.parametrize(
    "server_id", ["Search", "-search", "search_1", "with space", "", "a" * 64, "sérch", "a/b"]
)
async def test_rejects_an_mcp_server_id_outside_the_id_pattern_with_422(
    client: Client, server_id: str
) -> None:
    response = await client.post(BREAKER, json={"mcpServerId": server_id}, headers=AUTH)

    error = await error_of(response, 422)
    assert fields_of(error) == {"mcpServerId"}


@pytest.mark.parametrize("server_id", ["a", "0", "search-2", "a" * 63])
async def test_accepts_mcp_server_ids_at_the_edges_of_the_pattern(
    client: Client, server_id: str
) -> None:
    answer = await configure(client, {"mcpServerId": server_id})

    assert answer["config"]["mcpServerId"] == server_id


async def test_refuses_a_body_over_one_mebibyte_with_413(client: Client) -> None:
    body = b'{"failureThreshold": 3' + b" " * (1024 * 1024) + b"}"

    response = await client.post(
        BREAKER, data=io.BytesIO(body), headers={**AUTH, "Content-Type": "application/json"}
    )

    error = await error_of(response, 413)
    assert error["code"] == "payload_too_large"
    assert await all_events(client) == []


async def test_accepts_a_body_just_under_one_mebibyte(client: Client) -> None:
    body = b'{"failureThreshold": 3' + b" " * (1024 * 1024 - 100) + b"}"

    response = await client.post(
        BREAKER, data=io.BytesIO(body), headers={**AUTH, "Content-Type": "application/json"}
    )

    assert response.status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"failureThreshold": SECRET},
        {"openTimeout": SECRET},
        {"mcpServerId": SECRET.upper()},
        {"apiKey": SECRET},
        {"nested": {"token": SECRET}},
    ],
)
async def test_never_echoes_submitted_values_in_an_error(
    client: Client, body: dict[str, Any]
) -> None:
    response = await client.post(BREAKER, json=body, headers=AUTH)

    await error_of(response, 422)
    assert SECRET not in (await response.text()).lower()


async def test_never_echoes_a_malformed_body_in_an_error(client: Client) -> None:
    response = await client.post(BREAKER, data=f'{{"apiKey": {SECRET}'.encode(), headers=AUTH)

    await error_of(response, 400)
    assert SECRET not in await response.text()


async def test_a_refused_command_appends_nothing(client: Client) -> None:
    await client.post(BREAKER, json={"failureThreshold": "3"}, headers=AUTH)
    await client.post(BREAKER, data=b"{", headers=AUTH)
    await client.post(BREAKER, json={"failureThreshold": 3}, headers={"Authorization": "x"})

    assert await all_events(client) == []


# -- routes, methods and queries ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/no-such-route", "/events/nope", "/health/mcp", "/mcp-servers/x"]
)
async def test_answers_an_unknown_route_with_404(client: Client, path: str) -> None:
    response = await client.get(path, headers=AUTH)

    error = await error_of(response, 404)
    assert error["code"] == "not_found"


async def test_answers_an_unknown_mcp_server_with_404(client: Client) -> None:
    await configure(client, {"mcpServerId": "known"})

    response = await client.get("/health/mcp/unknown", headers=AUTH)

    error = await error_of(response, 404)
    assert error["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/events"),
        ("POST", "/events"),
        ("DELETE", "/audit/verify"),
        ("GET", BREAKER),
        ("DELETE", "/health/mcp/search"),
        ("POST", "/healthz"),
    ],
)
async def test_answers_a_wrong_method_with_405(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path, headers=AUTH)

    error = await error_of(response, 405)
    assert error["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/events?after=-1", "after"),
        ("/events?after=abc", "after"),
        ("/events?limit=0", "limit"),
        ("/events?limit=1001", "limit"),
        ("/events?limit=abc", "limit"),
        ("/events?limit=", "limit"),
        ("/events/stream?after=-5", "after"),
        (f"/events?after={2**63}", "after"),  # beyond a 64-bit position: was a 500 from SQLite
        ("/health/mcp/search?minPosition=x", "minPosition"),
        ("/health/mcp/search?minPosition=-1", "minPosition"),
    ],
)
async def test_rejects_bad_query_integers_with_422_naming_them(
    client: Client, path: str, field: str
) -> None:
    response = await client.get(path, headers=AUTH)

    error = await error_of(response, 422)
    assert fields_of(error) == {field}


@pytest.mark.parametrize("last", ["abc", "\u00b2", str(2**63)])  # "²" passes str.isdigit
async def test_rejects_a_last_event_id_that_is_not_a_position_with_422(
    client: Client, last: str
) -> None:
    response = await client.get("/events/stream", headers={**AUTH, "Last-Event-ID": last})

    error = await error_of(response, 422)
    assert fields_of(error) == {"Last-Event-ID"}


async def test_answers_504_when_the_read_model_does_not_reach_min_position(
    client: Client,
) -> None:
    answer = await configure(client, {"mcpServerId": "search"})

    response = await client.get(
        f"/health/mcp/search?minPosition={answer['position'] + 1_000}", headers=AUTH
    )

    error = await error_of(response, 504)
    assert error["code"] == "timeout"


# -- idempotency -------------------------------------------------------------------------------


async def test_a_repeated_idempotency_key_returns_the_first_answer_and_appends_nothing(
    client: Client,
) -> None:
    body = {"mcpServerId": "search", "failureThreshold": 6}

    first = await configure(client, body, **{"Idempotency-Key": "key-1"})
    second = await configure(client, body, **{"Idempotency-Key": "key-1"})

    assert second == first
    events = await all_events(client)
    assert [e["position"] for e in events] == [first["position"]]


async def test_concurrent_repeats_of_one_idempotency_key_append_once(client: Client) -> None:
    headers = {**AUTH, "Idempotency-Key": "key-1"}

    responses = await asyncio.gather(
        *(client.post(BREAKER, json={"failureThreshold": 6}, headers=headers) for _ in range(5))
    )

    answers = [await r.json() for r in responses]
    assert [r.status for r in responses] == [200] * 5
    assert all(answer == answers[0] for answer in answers)
    assert len(await all_events(client)) == 1


async def test_a_repeat_after_other_commands_still_gets_the_first_answer(client: Client) -> None:
    first = await configure(client, {"failureThreshold": 6}, **{"Idempotency-Key": "key-1"})
    await configure(client, {"failureThreshold": 9})

    repeat = await configure(client, {"failureThreshold": 6}, **{"Idempotency-Key": "key-1"})

    assert repeat == first
    assert len(await all_events(client)) == 2


async def test_the_same_body_without_a_key_or_with_another_key_appends_again(
    client: Client,
) -> None:
    body = {"failureThreshold": 6}

    answers = [
        await configure(client, body),
        await configure(client, body),
        await configure(client, body, **{"Idempotency-Key": "key-a"}),
        await configure(client, body, **{"Idempotency-Key": "key-b"}),
    ]

    assert [a["position"] for a in answers] == [1, 2, 3, 4]


async def test_refuses_a_reused_idempotency_key_with_another_body_with_409(
    client: Client,
) -> None:
    await configure(client, {"failureThreshold": 6}, **{"Idempotency-Key": "key-1"})

    response = await client.post(
        BREAKER, json={"failureThreshold": 7}, headers={**AUTH, "Idempotency-Key": "key-1"}
    )

    error = await error_of(response, 409)
    assert error["code"] == "idempotency_key_reused"
    assert len(await all_events(client)) == 1


@pytest.mark.parametrize("key", ["", "k" * 201])
async def test_rejects_an_idempotency_key_that_is_empty_or_too_long_with_422(
    client: Client, key: str
) -> None:
    response = await client.post(
        BREAKER, json={"failureThreshold": 6}, headers={**AUTH, "Idempotency-Key": key}
    )

    error = await error_of(response, 422)
    assert fields_of(error) == {"Idempotency-Key"}


# -- the circuit-breaker command and the health read ------------------------------------------


async def test_configures_the_default_then_a_server_that_inherits_the_rest(
    client: Client,
) -> None:
    default = await configure(client, {"failureThreshold": 5, "openTimeout": 60_000})
    server = await configure(client, {"mcpServerId": "search", "recoveryThreshold": 4})

    assert default == {
        "config": {
            "mcpServerId": None,
            "failureThreshold": 5,
            "recoveryThreshold": 2,
            "openTimeout": 60_000,
            "circuitBreakerEnabled": True,
        },
        "position": 1,
    }
    assert server == {
        "config": {
            "mcpServerId": "search",
            "failureThreshold": 5,
            "recoveryThreshold": 4,
            "openTimeout": 60_000,
            "circuitBreakerEnabled": True,
        },
        "position": 2,
    }


async def test_a_second_command_for_a_server_keeps_its_earlier_fields(client: Client) -> None:
    await configure(client, {"mcpServerId": "search", "failureThreshold": 8})

    answer = await configure(client, {"mcpServerId": "search", "circuitBreakerEnabled": False})

    assert answer["config"]["failureThreshold"] == 8
    assert answer["config"]["circuitBreakerEnabled"] is False


async def test_serves_the_configuration_back_once_the_read_model_reaches_the_position(
    client: Client,
) -> None:
    await configure(client, {"failureThreshold": 5})
    answer = await configure(
        client, {"mcpServerId": "search", "recoveryThreshold": 4, "circuitBreakerEnabled": False}
    )

    response = await client.get(
        f"/health/mcp/search?minPosition={answer['position']}", headers=AUTH
    )

    assert response.status == 200
    health = await response.json()
    assert health["mcpServerId"] == "search"
    assert health["config"] == answer["config"]
    assert health["position"] >= answer["position"]
    for field in ("health", "circuitState", "consecutiveFailures", "replicas", "transitions"):
        assert field in health


async def test_a_later_default_changes_what_a_server_inherits(client: Client) -> None:
    await configure(client, {"mcpServerId": "search", "recoveryThreshold": 4})
    answer = await configure(client, {"failureThreshold": 11})

    response = await client.get(
        f"/health/mcp/search?minPosition={answer['position']}", headers=AUTH
    )

    config = (await response.json())["config"]
    assert (config["failureThreshold"], config["recoveryThreshold"]) == (11, 4)


# -- the event log -----------------------------------------------------------------------------


async def test_every_event_carries_the_contract_fields(client: Client) -> None:
    await configure(client, {"failureThreshold": 5})
    await configure(
        client, {"mcpServerId": "search", "recoveryThreshold": 4}, **{"X-Request-ID": "req-42"}
    )

    events = await all_events(client)

    assert [e["position"] for e in events] == [1, 2]
    for event in events:
        for field in ("position", "streamId", "version", "type", "data", "recordedAt", "hash"):
            assert field in event, field
        assert event["type"] == "CircuitBreakerConfigured"
        assert event["version"] == 1
        assert event["metadata"]["actor"] == "token:DTMA_AUTH_TOKEN"  # named, never shown
        assert TOKEN not in event["metadata"]["actor"]
        assert event["metadata"]["correlation_id"]
        assert len(event["hash"]) == 64
    assert events[1]["metadata"]["correlation_id"] == "req-42"
    assert events[0]["streamId"] != events[1]["streamId"]
    assert events[0]["recordedAt"] <= events[1]["recordedAt"]


async def test_filters_events_by_stream(client: Client) -> None:
    await configure(client, {"failureThreshold": 5})
    await configure(client, {"mcpServerId": "search", "failureThreshold": 6})
    await configure(client, {"mcpServerId": "other", "failureThreshold": 7})
    await configure(client, {"mcpServerId": "search", "failureThreshold": 8})
    search_stream = (await all_events(client))[1]["streamId"]

    events = await all_events(client, f"&stream={search_stream}")

    assert [e["position"] for e in events] == [2, 4]
    assert [e["version"] for e in events] == [1, 2]
    assert {e["streamId"] for e in events} == {search_stream}


async def test_an_unknown_stream_has_no_events(client: Client) -> None:
    await configure(client, {"failureThreshold": 5})

    assert await all_events(client, "&stream=no-such-stream") == []


async def test_pages_through_the_log_returning_every_event_exactly_once(client: Client) -> None:
    for threshold in range(1, 8):
        await configure(client, {"failureThreshold": threshold})
    seen: list[int] = []
    after = 0

    for _ in range(10):
        response = await client.get(f"/events?after={after}&limit=3", headers=AUTH)
        page = await response.json()
        if not page["events"]:
            assert page["next"] == after
            break
        assert len(page["events"]) <= 3
        seen.extend(e["position"] for e in page["events"])
        assert page["next"] == page["events"][-1]["position"]
        after = page["next"]

    assert seen == [1, 2, 3, 4, 5, 6, 7]


async def test_an_empty_log_has_no_events_and_next_zero(client: Client) -> None:
    response = await client.get("/events", headers=AUTH)

    assert await response.json() == {"events": [], "next": 0}


# -- the audit route ---------------------------------------------------------------------------


async def test_verifies_the_chain_of_an_empty_log(client: Client) -> None:
    response = await client.get("/audit/verify", headers=AUTH)

    report = await response.json()
    assert report["ok"] is True
    assert (report["checked"], report["headPosition"]) == (0, 0)
    assert "firstBadPosition" not in report


async def test_verifies_the_whole_chain_up_to_the_head(client: Client) -> None:
    for threshold in (3, 4, 5):
        await configure(client, {"failureThreshold": threshold})
    events = await all_events(client)

    response = await client.get("/audit/verify", headers=AUTH)

    report = await response.json()
    assert report["ok"] is True
    assert report["checked"] == len(events) == 3
    assert report["headPosition"] == events[-1]["position"]
    assert report["headHash"] == events[-1]["hash"]
