"""Health routes: breaker configuration, one server's health, the comprehensive report and the
stream of health and circuit transitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiohttp import web

from eventstore.records import RecordedEvent
from service import commands, errors, handlers, health_report
from service.api.events import serve_sse
from service.api.wire import command_meta, read_command, wait_min_position
from service.health_monitor import breaker_config
from service.keys import context_key, monitor_key, runner_key
from service.status import ReadModels

STREAMED = ("ReplicaHealthChanged", "CircuitTransitioned")


async def configure_breaker(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.ConfigureBreaker)
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, body))
    return web.json_response(answer)


async def server_health(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    server_id = request.match_info["id"]
    models = ReadModels.of(runner)
    known = server_id in models.desired.servers or models.health.knows(server_id)
    if not known:
        raise errors.NotFoundError(f"no MCP server {server_id!r} is known")
    live = request.app[monitor_key].live(server_id)
    answer = health_report.server_health(models, server_id, live, breaker_config(models, server_id))
    return web.json_response({**answer, "position": runner.position})


async def comprehensive(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    report = health_report.comprehensive(ReadModels.of(runner), datetime.now(UTC))
    return web.json_response({**report, "position": runner.position})


def health_frame(event: RecordedEvent) -> bytes | None:
    """A replica's health or a circuit changing, as one SSE message; None for other events."""
    if event.type not in STREAMED:
        return None
    data = event.data
    body = {
        "position": event.position,
        "type": event.type,
        "mcpServerId": data["server_id"],
        "recordedAt": event.recorded_at,
    }
    if event.type == "ReplicaHealthChanged":
        body |= {
            "replica": data["replica"],
            "containerId": data["container_id"],
            "health": data["health"],
            "reason": data.get("reason"),
        }
    else:
        body |= {"from": data["from_state"], "to": data["to_state"], "cause": data["cause"]}
    payload = json.dumps(body, separators=(",", ":"))
    return f"id: {event.position}\nevent: {event.type}\ndata: {payload}\n\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    return await serve_sse(request, health_frame)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/health/circuit-breaker", configure_breaker)
    app.router.add_get("/health/comprehensive", comprehensive)
    app.router.add_get("/health/stream", stream)
    app.router.add_get("/health/mcp/{id}", server_health)
