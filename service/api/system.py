"""Liveness routes: `GET /healthz` (ours) and `GET /health` (the legacy plain `OK`)."""

from __future__ import annotations

from aiohttp import web

from service.keys import runner_key


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "position": request.app[runner_key].position})


async def legacy_health(_request: web.Request) -> web.Response:
    return web.Response(text="OK", content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/health", legacy_health)
