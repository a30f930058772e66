"""When the reconciler runs a pass: for an event it may act on, not for the passive ones (breaker
settings, applied configs and credentials, its own records), which would cost a Docker listing
each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from projections import events
from service import errors
from service.api.keys import reconciler_key, runner_key
from service.app import create_app
from service.docker.adapter import DockerAdapter
from service.orchestration.reconciler import PASSIVE_EVENTS
from service.settings import Settings
from tests.conftest import AUTH
from tests.support.waiting import wait_until


def test_every_passive_event_is_a_type_in_the_catalogue() -> None:
    assert set(events.CATALOGUE.names()) >= PASSIVE_EVENTS


async def test_passive_events_start_no_pass_and_a_group_declared_does(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    docker: DockerAdapter,
) -> None:
    settings = make_settings(reconcile_interval_s=3600)
    client = await aiohttp_client(create_app(settings))
    reconciler, runner = client.app[reconciler_key], client.app[runner_key]
    passes: list[tuple[str, int]] = []  # (start|end, the position the projections were at)
    original = reconciler.reconcile_once

    async def counted() -> None:
        passes.append(("start", runner.position))
        await original()
        passes.append(("end", runner.position))

    reconciler.reconcile_once = counted  # type: ignore[method-assign]
    try:

        async def ended_after(position: int) -> bool | None:
            return True if any(k == "end" and p >= position for k, p in passes) else None

        reconciler.poke()  # one pass now, so that whatever the start did is behind it
        await wait_until(lambda: ended_after(0), 30)
        before = len(passes)

        for threshold in (2, 3, 4):
            response = await client.post(
                "/health/circuit-breaker", json={"failureThreshold": threshold}, headers=AUTH
            )
            assert response.status == 200
            passive = (await response.json())["position"]
        assert await runner.wait_for(passive, within=10)
        declared = await declare(client, "woken")
        await wait_until(lambda: ended_after(declared), 30)
        started = [p for kind, p in passes[before:] if kind == "start"]
        assert started and min(started) >= declared, (passive, declared, passes)
    finally:
        await client.close()
        for name, labels in await docker.list_managed_networks():
            if all(labels.get(k) == v for k, v in settings.owner_labels.items()):
                await docker.remove_network(name)


async def test_a_failed_pass_is_retried_on_news_or_at_the_interval_not_at_once(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(reconcile_interval_s=3600)))
    reconciler, runner = client.app[reconciler_key], client.app[runner_key]
    calls: list[int] = []
    original = reconciler.reconcile_once

    async def settled() -> bool | None:
        return True if calls else None

    async def once_more() -> None:  # the start's pass behind us, then every pass fails
        await original()
        calls.append(runner.position)

    reconciler.reconcile_once = once_more  # type: ignore[method-assign]
    reconciler.poke()
    await wait_until(settled, 30)

    async def failing() -> None:
        calls.append(runner.position)
        await asyncio.sleep(0)
        raise errors.UnavailableError("the Docker engine is unreachable (a test's)")

    calls.clear()
    reconciler.reconcile_once = failing  # type: ignore[method-assign]
    try:
        first = await declare(client, "failing-1")
        await wait_until(settled, 30)
        for threshold in (2, 3):  # passive: whatever else folds, no new pass
            response = await client.post(
                "/health/circuit-breaker", json={"failureThreshold": threshold}, headers=AUTH
            )
            passive = (await response.json())["position"]
        assert await runner.wait_for(passive, within=10)
        assert len(calls) == 1 and calls[0] >= first, calls

        second = await declare(client, "failing-2")

        async def retried() -> bool | None:
            return True if len(calls) >= 2 else None

        await wait_until(retried, 30)
        assert len(calls) == 2 and calls[1] >= second, calls
    finally:
        await client.close()


async def declare(client: Any, group_id: str) -> int:
    response = await client.post(
        "/container-groups", json={"id": group_id, "name": group_id}, headers=AUTH
    )
    assert response.status == 201, await response.text()
    position: int = (await response.json())["position"]
    return position
