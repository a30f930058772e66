"""GET /metrics: Prometheus' text format, with what the service did and what it holds."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from service import loops
from service.api.keys import metrics_key
from tests.conftest import AUTH
from tests.support.waiting import wait_until


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the exposition, or None if it is not there."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name:
            found = ",".join(sorted((match[2] or "").split(","))) if match[2] else ""
            if found == wanted:
                return float(match[3])
    return None


async def metrics_text(client: Any) -> str:
    response = await client.get("/metrics", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text: str = await response.text()
    return text


async def test_metrics_need_the_token(client: Any) -> None:
    assert (await client.get("/metrics")).status == 401


async def test_a_command_shows_as_a_request_and_an_append(client: Any) -> None:
    before = await metrics_text(client)
    response = await client.post(
        "/health/circuit-breaker", json={"failureThreshold": 4}, headers=AUTH
    )
    assert response.status == 200
    missing = await client.get("/mcp-servers/nothing-here", headers=AUTH)
    assert missing.status == 404

    after = await metrics_text(client)

    appended = sample(after, "dtma_events_appended_total") or 0.0
    assert appended >= (sample(before, "dtma_events_appended_total") or 0.0) + 1
    assert (sample(after, "dtma_append_seconds_count") or 0.0) >= 1
    route = {"method": "POST", "route": "/health/circuit-breaker", "status": "200"}
    assert sample(after, "dtma_http_requests_total", **route) == 1.0
    by_pattern = {"method": "GET", "route": "/mcp-servers/{id}", "status": "404"}
    assert sample(after, "dtma_http_requests_total", **by_pattern) == 1.0  # no ids in labels
    assert sample(after, "dtma_projection_lag_events") is not None

    async def caught_up() -> bool | None:
        return sample(await metrics_text(client), "dtma_projection_lag_events") == 0.0 or None

    await wait_until(caught_up, 10)
    assert sample(after, "dtma_circuits", state="open") == 0.0
    assert sample(after, "dtma_replicas", state="running") == 0.0


async def test_a_failing_loop_is_counted_by_component(client: Any) -> None:
    async def buggy() -> None:
        raise RuntimeError("a bug")

    failed = client.app[metrics_key].loop_failed
    delays = loops.Doubling(first=0.01, ceiling=0.01)
    task = asyncio.create_task(loops.supervise("test-loop", buggy, failed, delays=delays))

    async def counted_twice() -> bool | None:
        text = await metrics_text(client)
        return (sample(text, "dtma_loop_failures_total", component="test-loop") or 0.0) >= 2 or None

    try:
        await wait_until(counted_twice, 10)
        response = await client.get("/healthz")  # public, like the liveness it is
        assert response.status == 200
        assert (await response.json())["loopFailures"]["test-loop"] >= 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
