"""Health routes: breaker configuration, one server's health, the comprehensive report and the
stream of health and circuit transitions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from aiohttp import web

from eventstore import records, times
from projections import health
from service import errors, status
from service import instance as instances
from service.api import routes, schemas, wire
from service.api.events import AFTER, LAST_EVENT_ID, SSE, STREAM_FAILURES, serve_sse, sse_message
from service.api.keys import api_url_key, context_key, monitor_key, reconciler_key, runner_key
from service.api.routes import Reply, Route
from service.api.wire import command_meta, read_command, wait_min_position
from service.docker import objects
from service.handling import commands, handlers
from service.health import breaker, monitor
from service.health import report as health_report

STREAMED = ("ReplicaHealthChanged", "CircuitTransitioned")


async def configure_breaker(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.ConfigureBreaker)
    answer = await handlers.handle(request.app[context_key], command, command_meta(request, body))
    return wire.answer_as(schemas.BreakerConfigured, answer)


async def server_health(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    server_id = request.match_info["id"]
    models = status.ReadModels.of(runner, request.app[api_url_key])
    known = server_id in models.desired.servers or models.health.knows(server_id)
    if not known:
        raise errors.NotFoundError(f"no MCP server {server_id!r} is known")
    live = request.app[monitor_key].live(server_id)
    config = monitor.breaker_config(models, server_id)
    return wire.answer(server_health_report(models, server_id, live, config, runner.position))


async def comprehensive(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    models = status.ReadModels.of(runner, request.app[api_url_key])
    foreign = request.app[reconciler_key].foreign
    report = comprehensive_report(models, datetime.now(UTC), foreign, runner.position)
    return wire.answer(report)


def server_health_report(
    models: status.ReadModels,
    server_id: str,
    live: breaker.Breaker,
    config: health.BreakerConfig,
    position: int,
) -> schemas.ServerHealthReport:
    """The circuit as the log has it, the counters as they are now."""
    view = models.health.circuit(server_id)
    deployed = server_id in models.desired.servers
    server = status.server_status(models, server_id) if deployed else None
    return schemas.ServerHealthReport(
        mcp_server_id=server_id,
        health=server.health if server else "unknown",
        circuit_state=view.state,
        consecutive_failures=live.consecutive_failures,
        consecutive_successes=live.consecutive_successes,
        last_check_at=_time(live.last_check_at),
        last_error=live.last_error,
        opened_at=view.opened_at,
        next_attempt_at=view.next_attempt_at,
        replicas=[replica_health(models, server_id, i) for i in server.instances] if server else [],
        transitions=[
            schemas.Transition(
                from_=t.from_state, to=t.to_state, cause=t.cause, position=t.position, at=t.at
            )
            for t in reversed(view.transitions)
        ],
        config=handlers.breaker_config_answer(server_id, config),
        position=position,
    )


def replica_health(
    models: status.ReadModels, server_id: str, instance: schemas.InstanceStatus
) -> schemas.ReplicaHealth:
    current = health_report.current_verdict(
        models, server_id, instance.replica, instance.container_id
    )
    return schemas.ReplicaHealth(
        replica=instance.replica,
        container_id=instance.container_id,
        state=instance.state,
        health=instance.health,
        since=current.since if current else None,
        last_probe_error=current.reason if current and current.health == "unhealthy" else None,
        exit_code=instance.exit_code,
        oom_killed=instance.oom_killed,
    )


def comprehensive_report(
    models: status.ReadModels,
    now: datetime,
    foreign: Sequence[objects.ContainerInfo],
    position: int,
) -> schemas.ComprehensiveReport:
    servers = [status.server_status(models, s) for s in sorted(models.desired.servers)]
    since = now - health_report.FAILURE_WINDOW
    return schemas.ComprehensiveReport(
        overall_status=health_report.overall_status(servers),
        mcp_server_states=servers,
        failed_containers=[
            schemas.FailedContainer(
                container_id=f.container_id,
                mcp_server_id=server_id,
                replica=f.replica,
                exit_code=f.exit_code,
                oom_killed=f.oom_killed,
                failed_at=f.at,
                reason=f.reason,
            )
            for server_id, f in health_report.recent_failures(models, since)
        ],
        recommended_actions=[
            schemas.RecommendedAction.model_validate(action)
            for server_id in sorted(models.desired.servers)
            for action in health_report.recommended_actions(models, server_id, since, now)
        ],
        foreign_containers=[foreign_container(c) for c in foreign],
        position=position,
    )


def foreign_container(found: objects.ContainerInfo) -> schemas.ForeignContainer:
    """A managed container another DTMA instance made, as the reconciler's last pass found it."""
    return schemas.ForeignContainer(
        container_id=found.id,
        name=found.name.lstrip("/"),
        instance=found.labels.get(instances.LABEL),
        group=found.labels.get("dtma.group"),
        mcp_server_id=found.labels.get("dtma.server"),
    )


def _time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return times.format_epoch(epoch)


def health_frame(event: records.RecordedEvent) -> bytes | None:
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
    return sse_message(event, body)


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
