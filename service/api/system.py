"""Liveness routes: `GET /healthz` (ours) and `GET /health` (the legacy plain `OK`)."""

from __future__ import annotations

from aiohttp import web

from service.keys import metrics_key, runner_key, store_key
from service.metrics import CONTENT_TYPE


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "position": request.app[runner_key].position})


async def legacy_health(_request: web.Request) -> web.Response:
    return web.Response(text="OK", content_type="text/plain")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus' text format. Needs the bearer token like every route but /healthz."""
    head, _ = await request.app[store_key].head()
    body = request.app[metrics_key].exposition(head)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/health", legacy_health)
