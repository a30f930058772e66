"""Concurrent commands on one stream: each is carried out in turn, none is refused for racing
another (409 is for a conflict with another process, not with this one's own requests)."""

from __future__ import annotations

import asyncio
from typing import Any

from service.handling.stream_locks import StreamLocks
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


async def test_a_repeated_key_among_concurrent_commands_changes_nothing(client: Any) -> None:
    """A repeat appends nothing; the commands decided after it still merge over the log."""
    key = {"Idempotency-Key": "breaker-once", **AUTH}
    first = await client.post("/health/circuit-breaker", json={"openTimeout": 9000}, headers=key)
    assert first.status == 200
    original = await first.json()

    async def send(number: int) -> dict[str, Any]:
        headers, body = (
            (key, {"openTimeout": 9000}) if number == 3 else (AUTH, {"failureThreshold": number})
        )
        response = await client.post("/health/circuit-breaker", json=body, headers=headers)
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer

    answers = await asyncio.gather(*(send(n) for n in range(1, 9)))
    assert answers[2] == original  # the repeat: the first answer, its position
    fresh = sorted((a for i, a in enumerate(answers) if i != 2), key=lambda a: a["position"])
    assert [a["position"] for a in fresh] == list(
        range(original["position"] + 1, original["position"] + 8)
    )
    assert all(a["config"]["openTimeout"] == 9000 for a in fresh)
    last = await client.post("/health/circuit-breaker", json={"recoveryThreshold": 4}, headers=AUTH)
    settled = (await last.json())["config"]
    assert settled["failureThreshold"] == fresh[-1]["config"]["failureThreshold"]
    assert (settled["openTimeout"], settled["recoveryThreshold"]) == (9000, 4)


async def test_concurrent_group_commands_all_land_in_turn(client: Any) -> None:
    """Restarts of one group (an empty one: nothing for Docker to do), all at once: each is
    appended at its own position, none answered 409."""
    created = await client.post(
        "/container-groups", json={"id": "busy", "name": "Busy"}, headers=AUTH
    )
    assert created.status < 300, await created.text()

    async def restart(_number: int) -> int:
        response = await client.put("/container-groups/busy/restart", headers=AUTH)
        assert response.status == 202, await response.text()
        position: int = (await response.json())["position"]
        return position

    positions = await asyncio.gather(*(restart(n) for n in range(CLIENTS)))
    assert len(set(positions)) == CLIENTS
    page = await (await client.get("/events?stream=group-busy", headers=AUTH)).json()
    kinds = [event["type"] for event in page["events"]]
    assert kinds.count("GroupRestartRequested") == CLIENTS


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
