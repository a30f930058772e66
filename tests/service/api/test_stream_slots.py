"""Event streams per token are capped: past the cap a new stream is 429, and a closed stream
gives its slot back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import ClientResponse

from service.app import create_app
from service.settings import Settings
from tests.conftest import AUTH
from tests.support.waiting import wait_until


async def test_a_token_holds_at_most_its_cap_of_streams_across_both_routes(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(max_streams_per_token=2)))
    held: list[ClientResponse] = [
        await client.get("/events/stream", headers=AUTH),
        await client.get("/health/stream", headers=AUTH),
    ]
    assert [r.status for r in held] == [200, 200]

    refused = await client.get("/events/stream", headers=AUTH)

    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "too_many_streams"

    held.pop().close()

    async def reopened() -> ClientResponse | None:
        again: ClientResponse = await client.get("/health/stream", headers=AUTH)
        if again.status == 200:
            return again
        assert again.status == 429
        return None

    held.append(await wait_until(reopened, within=10))
    for response in held:
        response.close()
