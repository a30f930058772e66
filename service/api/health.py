"""Health routes: breaker configuration, one server's health, the comprehensive report and the
stream of health and circuit transitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiohttp import web

from eventstore.records import RecordedEvent
from service import errors
from service.api import routes, schemas
from service.api.events import AFTER, LAST_EVENT_ID, SSE, STREAM_FAILURES, serve_sse
from service.api.keys import api_url_key, context_key, monitor_key, reconciler_key, runner_key
from service.api.routes import Reply, Route
from service.api.wire import command_meta, read_command, wait_min_position
from service.handling import commands, handlers
from service.health import report as health_report
from service.health.monitor import breaker_config
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
    models = ReadModels.of(runner, request.app[api_url_key])
    known = server_id in models.desired.servers or models.health.knows(server_id)
    if not known:
        raise errors.NotFoundError(f"no MCP server {server_id!r} is known")
    live = request.app[monitor_key].live(server_id)
    answer = health_report.server_health(models, server_id, live, breaker_config(models, server_id))
    return web.json_response({**answer, "position": runner.position})


async def comprehensive(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    report = health_report.comprehensive(
        ReadModels.of(runner, request.app[api_url_key]), datetime.now(UTC)
    )
    foreign = health_report.foreign(request.app[reconciler_key].foreign)
    return web.json_response({**report, "foreignContainers": foreign, "position": runner.position})


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


ROUTES = (
    Route(
        "POST",
        "/health/circuit-breaker",
        configure_breaker,
        "Configure one server's circuit breaker, or (without mcpServerId) the default",
        {
            **routes.ok("the configuration now in force", schemas.BreakerConfigured),
            **routes.failures(400, 401, 409, 413, 422, 503),
        },
        body=commands.ConfigureBreaker,
        params=routes.COMMAND_HEADERS,
        tag="health",
    ),
    Route(
        "GET",
        "/health/comprehensive",
        comprehensive,
        "Every server's state, recent container failures and recommended actions",
        {
            **routes.ok("the report", schemas.ComprehensiveReport),
            **routes.failures(401, 422, 503, 504),
        },
        params=(routes.MIN_POSITION,),
        tag="health",
    ),
    Route(
        "GET",
        "/health/stream",
        stream,
        "Server-Sent Events: each replica health change and circuit transition",
        {200: Reply("an endless event stream", media_type=SSE), **STREAM_FAILURES},
        params=(AFTER, LAST_EVENT_ID),
        tag="health",
    ),
    Route(
        "GET",
        "/health/mcp/{id}",
        server_health,
        "One server's health, circuit, live counters and last transitions",
        {
            **routes.ok("the server's health", schemas.ServerHealthReport),
            **routes.failures(401, 404, 422, 503, 504),
        },
        params=(
            routes.Param("id", "path", {"type": "string"}, "the MCP server's id", required=True),
            routes.MIN_POSITION,
        ),
        tag="health",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
