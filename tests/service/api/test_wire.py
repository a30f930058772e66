"""What `api/wire.py` reads off a request, on the circuit-breaker command and the reads:
malformed and invalid bodies, the body size limit, query integers, min positions and
idempotency keys."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from tests.conftest import AUTH
from tests.support.api import BREAKER, Client, all_events, configure, error_of, fields_of


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


async def test_a_refused_command_appends_nothing(client: Client) -> None:
    await client.post(BREAKER, json={"failureThreshold": "3"}, headers=AUTH)
    await client.post(BREAKER, data=b"{", headers=AUTH)
    await client.post(BREAKER, json={"failureThreshold": 3}, headers={"Authorization": "x"})

    assert await all_events(client) == []


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


async def test_answers_504_when_the_read_model_does_not_reach_min_position(
    client: Client,
) -> None:
    answer = await configure(client, {"mcpServerId": "search"})

    response = await client.get(
        f"/health/mcp/search?minPosition={answer['position'] + 1_000}", headers=AUTH
    )

    error = await error_of(response, 504)
    assert error["code"] == "timeout"


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
