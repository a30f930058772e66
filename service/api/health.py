"""Health routes. This issue: the breaker configuration command and what the projection knows."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from projections import health
from service import commands, errors, handlers
from service.api.wire import command_meta, read_command, wait_min_position
from service.keys import context_key, runner_key


async def configure_breaker(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.ConfigureBreaker)
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, body))
    return web.json_response(answer)


async def server_health(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    server_id = request.match_info["id"]
    state = runner.state(health.PROJECTION)
    if not state.knows(server_id):
        raise errors.NotFoundError(f"no MCP server {server_id!r} is known")
    return web.json_response(server_health_json(server_id, state, runner.position))


def server_health_json(server_id: str, state: health.HealthState, position: int) -> dict[str, Any]:
    # Probes and breakers arrive with the health issue; until then nothing has been observed.
    return {
        "mcpServerId": server_id,
        "health": "unknown",
        "circuitState": "closed",
        "consecutiveFailures": 0,
        "consecutiveSuccesses": 0,
        "lastCheckAt": None,
        "lastError": None,
        "openedAt": None,
        "nextAttemptAt": None,
        "replicas": [],
        "transitions": [],
        "config": handlers.breaker_config_json(server_id, state.breaker_config(server_id)),
        "position": position,
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/health/circuit-breaker", configure_breaker)
    app.router.add_get("/health/mcp/{id}", server_health)
