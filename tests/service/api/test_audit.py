"""`GET /audit/verify`: the chain of the log checked up to its head."""

from __future__ import annotations

from tests.conftest import AUTH
from tests.support.api import Client, all_events, configure


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
