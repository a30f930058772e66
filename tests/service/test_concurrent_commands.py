"""Concurrent commands on one stream: each is carried out in turn, none is refused for racing
another (409 is for a conflict with another process, not with this one's own requests)."""

from __future__ import annotations

import asyncio
from typing import Any

from service.stream_locks import StreamLocks
from tests.conftest import AUTH

CLIENTS = 32


async def test_concurrent_breaker_settings_all_land_in_turn(client: Any) -> None:
    """Half set failureThreshold, half recoveryThreshold: each answer merges over every
    setting positioned before it, so no update is lost."""

    async def configure(number: int) -> tuple[str, int, dict[str, Any]]:
        field = "failureThreshold" if number % 2 else "recoveryThreshold"
        response = await client.post("/health/circuit-breaker", json={field: number}, headers=AUTH)
        assert response.status == 200, await response.text()
        return field, number, await response.json()

    answers = await asyncio.gather(*(configure(n) for n in range(1, CLIENTS + 1)))
    answers.sort(key=lambda answer: answer[2]["position"])
    assert len({answer["position"] for _, _, answer in answers}) == CLIENTS
    latest: dict[str, int] = {}
    for field, number, answer in answers:
        latest[field] = number
        for name, value in latest.items():
            assert answer["config"][name] == value


async def test_a_stream_lock_is_forgotten_when_nobody_holds_it() -> None:
    locks = StreamLocks()
    order: list[int] = []

    async def hold(number: int) -> None:
        async with locks.held("breaker-default"):
            order.append(number)
            await asyncio.sleep(0)
            order.append(number)

    await asyncio.gather(*(hold(n) for n in range(3)))
    assert order == [0, 0, 1, 1, 2, 2]  # never interleaved
    assert not locks._locks and not locks._users
