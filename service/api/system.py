"""Liveness routes: `GET /healthz` (ours) and `GET /health` (the legacy plain `OK`)."""

from __future__ import annotations

from aiohttp import web

from service import metrics as service_metrics
from service.api import middlewares, routes, schemas, wire
from service.api.keys import instance_key, metrics_key, runner_key, store_key
from service.api.routes import Reply, Route


async def healthz(request: web.Request) -> web.Response:
    """200 while the projections follow the log; 503 `degraded` while they are stopped before
    an event they cannot read, so that a load balancer or a watchdog sees it. Either way it
    counts the background loops that raised and were restarted (a bug: nothing dies silently)."""
    runner, instance = request.app[runner_key], request.app[instance_key]
    failures = dict(request.app[metrics_key].failed_loops)
    if runner.failure is None:
        alive = schemas.Liveness(
            status="ok", position=runner.position, instance=instance, loop_failures=failures
        )
        return wire.answer(alive)
    head, _ = await request.app[store_key].head()
    degraded = schemas.Degraded(
        status="degraded",
        position=runner.position,
        instance=instance,
        projections=middlewares.projections_stopped(runner.position, head, runner.failure),
        loop_failures=failures,
    )
    return wire.answer(degraded, status=503)


async def legacy_health(_request: web.Request) -> web.Response:
    return web.Response(text="OK", content_type="text/plain")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus' text format. Needs the bearer token like every route but /healthz."""
    head, _ = await request.app[store_key].head()
    body = request.app[metrics_key].exposition(head)
    return web.Response(body=body, headers={"Content-Type": service_metrics.CONTENT_TYPE})


ROUTES = (
    Route(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics (text format 0.0.4)",
        {
            200: Reply("the metrics", media_type="text/plain"),
            **routes.failures(401, 503),
        },
        tag="meta",
        role="metrics",
    ),
    Route(
        "GET",
        "/healthz",
        healthz,
        "Liveness, with the read model's position; 503 while the projections are stopped",
        {
            **routes.ok("the service is up", schemas.Liveness),
            503: Reply("the projections are stopped before an event", schemas.Degraded),
        },
        tag="meta",
        public=True,
    ),
    Route(
        "GET",
        "/health",
        legacy_health,
        "Liveness for the legacy backend: plain `OK`",
        {200: Reply("the service is up: `OK`", media_type="text/plain")},
        tag="legacy",
        public=True,
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
