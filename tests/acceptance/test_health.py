"""Probes, circuit breakers, the health report and stream, over HTTP on a real Docker engine."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from projections import ALL, events
from projections.runner import FoldSet, fold_log
from service.api.keys import runner_key, store_key
from service.app import create_app
from service.docker.adapter import DockerAdapter
from service.settings import Settings
from tests.acceptance.conftest import sweep
from tests.acceptance.test_orchestration import containers_of, send, status_of
from tests.conftest import AUTH
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

FAST_PROBES = {"healthCheckInterval": 500, "healthCheckTimeout": 1500, "startPeriod": 15_000}


def server(server_id: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"id": server_id, "image": image, "healthCheck": FAST_PROBES, **extra}


async def health_of(service: Any, server_id: str) -> dict[str, Any]:
    response = await service.get(f"/health/mcp/{server_id}", headers=AUTH)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def until_circuit(service: Any, server_id: str, state: str, within: float) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        health = await health_of(service, server_id)
        return health if health["circuitState"] == state else None

    return await wait_until(probe, within)


async def until_healthy(
    service: Any, server_id: str, after: int, replicas: int = 1
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        status = await status_of(service, server_id, after)
        return status if status["healthyReplicas"] == replicas else None

    return await wait_until(probe, 60)


async def log_of(service: Any, server_id: str) -> list[dict[str, Any]]:
    response = await service.get(f"/events?stream=server-{server_id}&limit=1000", headers=AUTH)
    assert response.status == 200
    found: list[dict[str, Any]] = (await response.json())["events"]
    return found


async def comprehensive(service: Any) -> dict[str, Any]:
    response = await service.get("/health/comprehensive", headers=AUTH)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def actions_for(report: dict[str, Any], server_id: str) -> dict[str, str]:
    return {
        a["action"]: a["reason"]
        for a in report["recommendedActions"]
        if a["mcpServerId"] == server_id
    }


async def test_a_crashing_server_trips_its_breaker_and_recovers_once_fixed(
    service: Any, mcp_image: str
) -> None:
    await send(
        service,
        "POST",
        "/health/circuit-breaker",
        {
            "mcpServerId": "crashy",
            "failureThreshold": 3,
            "recoveryThreshold": 2,
            "openTimeout": 8000,
        },
    )
    crashing = server("crashy", mcp_image, env={"MCP_CRASH_AFTER_S": "3"})
    await send(service, "POST", "/mcp-servers/deploy", {"groupId": "hc", "mcpServers": [crashing]})

    opened = await until_circuit(service, "crashy", "open", within=90)

    assert "exited with code 3" in opened["transitions"][0]["cause"]
    assert opened["health"] == "unhealthy" and opened["nextAttemptAt"] > opened["openedAt"]
    report = await comprehensive(service)
    crashes = [f for f in report["failedContainers"] if f["mcpServerId"] == "crashy"]
    assert len(crashes) >= 3 and {f["exitCode"] for f in crashes} == {3}
    assert not any(f["oomKilled"] for f in crashes)
    actions = actions_for(report, "crashy")
    assert "exited with code 3" in actions["check_logs_and_credentials"]
    assert "/container-groups/hc/restart" in actions["restart_group_when_fixed"]
    assert report["overallStatus"] == "unhealthy"

    # The cause goes away with a redeploy; the breaker still waits out its open timeout.
    fixed = server("crashy", mcp_image)
    redeployed = await send(
        service, "POST", "/mcp-servers/deploy", {"groupId": "hc", "mcpServers": [fixed]}
    )
    closed = await until_circuit(service, "crashy", "closed", within=90)

    moves = [(t["from"], t["to"]) for t in reversed(closed["transitions"])]
    # (On a loaded machine a recovery attempt may fail and open it once more.)
    assert moves[:2] == [("closed", "open"), ("open", "half_open")]
    assert moves[-1] == ("half_open", "closed")
    log = await log_of(service, "crashy")
    transitions = [e for e in log if e["type"] == "CircuitTransitioned"]
    for opened_event, next_event in zip(transitions, transitions[1:], strict=False):
        if opened_event["data"]["to_state"] != "open":
            continue
        started_while_open = [
            e
            for e in log
            if e["type"] in ("ContainerCreated", "ContainerStarted")
            and opened_event["position"] < e["position"] < next_event["position"]
        ]
        assert started_while_open == []  # left alone until the open timeout
    assert all(
        e["metadata"]["actor"] == "system" for e in log if e["type"] == "CircuitTransitioned"
    )
    status = await until_healthy(service, "crashy", redeployed)
    assert status["circuitState"] == "closed" and status["health"] == "healthy"
    await assert_live_state_equals_a_fold_from_zero(service)


async def assert_live_state_equals_a_fold_from_zero(service: Any) -> None:
    """The circuit every reader sees is the log's: folding it from zero gives the same."""
    runner, store = service.app[runner_key], service.app[store_key]

    async def folded_at_one_position() -> FoldSet | None:
        position = runner.position
        folds = FoldSet(events.CATALOGUE, ALL)
        await fold_log(store, folds, lambda e: e.position > position)
        return folds if runner.position == position == folds.position else None

    folds = await wait_until(folded_at_one_position, 30)  # the runner may move meanwhile
    for projection in ALL:
        assert folds.state(projection) == runner.state(projection), projection.name


async def test_a_server_that_accepts_tcp_but_never_answers_mcp_is_unhealthy_while_running(
    service: Any, mcp_image: str, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    check = {**FAST_PROBES, "startPeriod": 0, "failureThreshold": 2}
    hung = {"id": "hung", "image": mcp_image, "env": {"MCP_HANG": "1"}, "healthCheck": check}
    deployed = await send(
        service, "POST", "/mcp-servers/deploy", {"groupId": "hung", "mcpServers": [hung]}
    )

    async def judged_unhealthy() -> dict[str, Any] | None:
        status = await status_of(service, "hung", deployed)
        instances = status["instances"]
        return status if instances and instances[0]["health"] == "unhealthy" else None

    status = await wait_until(judged_unhealthy, 60)

    assert status["instances"][0]["state"] == "running" and status["healthyReplicas"] == 0
    [container] = await containers_of(docker, owner_labels, "hung")
    assert (await docker.inspect_container(container.id)).running
    # Probes keep failing, and the log holds one verdict, not one entry per probe.
    await wait_until(
        lambda: _at_least(service, "hung", "consecutiveFailures", 4, fallback="open"), 30
    )
    verdicts = [e for e in await log_of(service, "hung") if e["type"] == "ReplicaHealthChanged"]
    assert [(v["data"]["health"], v["data"]["timed_out"]) for v in verdicts] == [
        ("unhealthy", True)
    ]
    assert "time out" in actions_for(await comprehensive(service), "hung")["inspect_server"]


async def _at_least(
    service: Any, server_id: str, field: str, value: int, fallback: str
) -> bool | None:
    health = await health_of(service, server_id)
    return True if health[field] >= value or health["circuitState"] == fallback else None


async def test_a_replica_killed_from_outside_is_replaced_and_healthy_again(
    service: Any, mcp_image: str, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    deployed = await send(
        service,
        "POST",
        "/mcp-servers/deploy",
        {"groupId": "kill", "mcpServers": [server("victim", mcp_image, replicas=2)]},
    )
    await until_healthy(service, "victim", deployed, replicas=2)
    first = await containers_of(docker, owner_labels, "victim")

    await docker.kill_container(first[0].id)

    async def replaced() -> dict[str, Any] | None:
        status = await status_of(service, "victim")
        ids = {i["containerId"] for i in status["instances"]}
        healthy = status["healthyReplicas"] == 2 and first[0].id not in ids
        return status if healthy else None

    status = await wait_until(replaced, 60)
    assert status["instances"][0]["restartCount"] == 1
    health = await health_of(service, "victim")
    assert health["circuitState"] == "closed"
    report = await comprehensive(service)
    [death] = [f for f in report["failedContainers"] if f["mcpServerId"] == "victim"]
    assert (death["containerId"], death["exitCode"], death["oomKilled"]) == (
        first[0].id,
        137,
        False,
    )
    assert report["overallStatus"] == "healthy"


async def test_an_oom_killed_replica_is_reported_as_oom_with_advice(
    service: Any, mcp_image: str
) -> None:
    hungry = server(
        "hungry",
        mcp_image,
        env={"MCP_ALLOCATE_MB": "256"},
        resourceLimits={"memoryMb": 32},
    )
    await send(service, "POST", "/mcp-servers/deploy", {"groupId": "oomh", "mcpServers": [hungry]})

    async def reported() -> dict[str, Any] | None:
        report = await comprehensive(service)
        ooms = [f for f in report["failedContainers"] if f["oomKilled"]]
        return report if ooms else None

    report = await wait_until(reported, 60)

    oom = next(f for f in report["failedContainers"] if f["oomKilled"])
    assert (oom["mcpServerId"], oom["exitCode"]) == ("hungry", 137)
    assert "32 MB" in actions_for(report, "hungry")["raise_memory_limit"]


async def test_dependents_start_only_once_their_dependency_is_healthy(
    service: Any, mcp_image: str
) -> None:
    servers = [server("app", mcp_image, dependsOn=["db"]), server("db", mcp_image)]
    deployed = await send(
        service, "POST", "/mcp-servers/deploy", {"groupId": "dep", "mcpServers": servers}
    )

    await until_healthy(service, "app", deployed)

    db_healthy = next(
        e["position"]
        for e in await log_of(service, "db")
        if e["type"] == "ReplicaHealthChanged" and e["data"]["health"] == "healthy"
    )
    app_created = next(
        e["position"] for e in await log_of(service, "app") if e["type"] == "ContainerCreated"
    )
    assert app_created > db_healthy
    response = await service.get("/metrics", headers=AUTH)
    passed = re.search(
        r'dtma_probe_results_total\{result="pass",type="mcp"\} (\S+)', await response.text()
    )
    assert passed is not None and float(passed[1]) >= 2  # each server's replica passed a probe


async def test_the_health_stream_sends_transitions_and_resumes_after_the_last_id(
    service: Any, mcp_image: str, docker: DockerAdapter, owner_labels: dict[str, str]
) -> None:
    await send(
        service,
        "POST",
        "/mcp-servers/deploy",
        {"groupId": "stream", "mcpServers": [server("watched", mcp_image)]},
    )
    first = await next_health_message(service, {})
    assert (first["type"], first["mcpServerId"], first["health"]) == (
        "ReplicaHealthChanged",
        "watched",
        "healthy",
    )

    [container] = await containers_of(docker, owner_labels, "watched")
    await docker.kill_container(container.id)
    second = await next_health_message(service, {"Last-Event-ID": str(first["position"])})

    assert second["position"] > first["position"]
    assert second["health"] == "healthy" and second["containerId"] != container.id


async def next_health_message(service: Any, headers: dict[str, str]) -> dict[str, Any]:
    """The first message of GET /health/stream, read as an EventSource would."""
    async with asyncio.timeout(60):
        response = await service.get("/health/stream", headers={**AUTH, **headers})
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if "data" in fields:
                response.close()
                message: dict[str, Any] = json.loads(fields["data"])
                assert fields["id"] == str(message["position"])
                return message
    raise AssertionError("the stream ended without a message")


# -- the heartbeat -------------------------------------------------------------------------------


@pytest.fixture
async def backend(aiohttp_server: Callable[..., Any]) -> AsyncIterator[dict[str, Any]]:
    """The Agentopia backend's stand-in: records every heartbeat it receives."""
    received: list[dict[str, Any]] = []
    tokens: list[str | None] = []
    arrived = asyncio.Event()

    async def heartbeat(request: web.Request) -> web.Response:
        received.append(await request.json())
        tokens.append(request.headers.get("Authorization"))
        arrived.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/heartbeat", heartbeat)
    running = await aiohttp_server(app)
    yield {"url": str(running.make_url("")), "received": received, "tokens": tokens}


async def test_the_heartbeat_reaches_the_backend_at_start_and_when_a_circuit_opens(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    backend: dict[str, Any],
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    mcp_image: str,
) -> None:
    settings = service_settings(
        backend_url=backend["url"], backend_token="backend-secret", heartbeat_interval_s=3600
    )
    client = await aiohttp_client(create_app(settings))
    try:
        received: list[dict[str, Any]] = backend["received"]

        async def arrived() -> bool | None:
            return bool(received) or None

        await wait_until(arrived, 30)
        beat = received[0]
        assert set(beat) == {"dtma_version", "system_status", "tool_statuses", "mcp_servers"}
        assert {"cpu_load_percent", "memory", "disk", "uptime_seconds"} <= set(
            beat["system_status"]
        )
        assert beat["mcp_servers"] == [] and backend["tokens"][0] == "Bearer backend-secret"

        await send(
            client,
            "POST",
            "/health/circuit-breaker",
            {"mcpServerId": "flaky", "failureThreshold": 1, "openTimeout": 600_000},
        )
        flaky = server("flaky", mcp_image, env={"MCP_CRASH_AFTER_S": "1"})
        await send(client, "POST", "/mcp-servers/deploy", {"groupId": "hb", "mcpServers": [flaky]})

        async def told_open() -> dict[str, Any] | None:
            for beat in received:
                states = {s["id"]: s["circuitState"] for s in beat["mcp_servers"]}
                if states.get("flaky") == "open":
                    return beat
            return None

        beat = await wait_until(told_open, 60)  # at once: the interval is an hour
        [flaky_state] = beat["mcp_servers"]
        assert flaky_state["health"] == "unhealthy" and flaky_state["groupId"] == "hb"
    finally:
        await client.close()
        await sweep(docker, owner_labels)


async def test_a_down_backend_delays_neither_commands_nor_probes(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    mcp_image: str,
    unused_tcp_port: int,
) -> None:
    settings = service_settings(backend_url=f"http://127.0.0.1:{unused_tcp_port}")
    client = await aiohttp_client(create_app(settings))
    try:
        body = {"groupId": "nb", "mcpServers": [server("nb", mcp_image)]}
        deployed = await send(client, "POST", "/mcp-servers/deploy", body)
        status = await until_healthy(client, "nb", deployed)
        assert status["circuitState"] == "closed"
    finally:
        await client.close()
        await sweep(docker, owner_labels)


async def test_a_restarted_dtma_confirms_verdicts_the_log_has_without_rewriting_them(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    docker: DockerAdapter,
    owner_labels: dict[str, str],
    mcp_image: str,
) -> None:
    first = await aiohttp_client(create_app(service_settings()))
    try:
        body = {"groupId": "steady", "mcpServers": [server("steady", mcp_image)]}
        deployed = await send(first, "POST", "/mcp-servers/deploy", body)
        await until_healthy(first, "steady", deployed)
    finally:
        await first.close()

    second = await aiohttp_client(create_app(service_settings()))  # the same database
    try:
        await wait_until(
            lambda: _at_least(second, "steady", "consecutiveSuccesses", 3, fallback="open"), 30
        )

        verdicts = [
            e for e in await log_of(second, "steady") if e["type"] == "ReplicaHealthChanged"
        ]
        assert [v["data"]["health"] for v in verdicts] == ["healthy"]
        assert (await health_of(second, "steady"))["circuitState"] == "closed"
    finally:
        await second.close()
        await sweep(docker, owner_labels)
