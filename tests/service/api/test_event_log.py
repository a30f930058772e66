"""`GET /events`: the log, page by page and by stream, every event with the contract's fields;
and the Last-Event-ID the stream (test_events.py) resumes from."""

from __future__ import annotations

import pytest

from tests.conftest import AUTH, TOKEN
from tests.support.api import Client, all_events, configure, error_of, fields_of


@pytest.mark.parametrize("last", ["abc", "\u00b2", str(2**63)])  # "²" passes str.isdigit
async def test_rejects_a_last_event_id_that_is_not_a_position_with_422(
    client: Client, last: str
) -> None:
    response = await client.get("/events/stream", headers={**AUTH, "Last-Event-ID": last})

    error = await error_of(response, 422)
    assert fields_of(error) == {"Last-Event-ID"}


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
