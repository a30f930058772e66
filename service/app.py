"""The composition root: `create_app(settings)` wires store, projections and Docker into aiohttp.

Nothing is built at import time. Cleanup contexts start in dependency order and stop in reverse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

import migrations
from eventstore.store import EventStore, create_engine
from projections import ALL, events
from projections.runner import ProjectionRunner
from service.api import events as events_api
from service.api import health as health_api
from service.api import system as system_api
from service.docker import DockerAdapter
from service.handlers import CommandContext
from service.keys import context_key, docker_key, runner_key, settings_key, store_key
from service.middlewares import auth_middleware, error_middleware
from service.settings import Settings

MAX_BODY_BYTES = 1024 * 1024


async def open_store(settings: Settings) -> EventStore:
    """The store on a database brought to the newest schema."""
    engine = create_engine(settings.database_url)
    await migrations.upgrade(engine)
    return await EventStore.open(settings.database_url, engine=engine)


async def store_context(app: web.Application) -> AsyncIterator[None]:
    store = await open_store(app[settings_key])
    app[store_key] = store
    app[context_key] = CommandContext(store=store, catalogue=events.CATALOGUE)
    try:
        yield
    finally:
        await store.close()


async def runner_context(app: web.Application) -> AsyncIterator[None]:
    runner = ProjectionRunner(
        app[store_key], events.CATALOGUE, ALL, snapshot_every=app[settings_key].snapshot_every
    )
    await runner.start()
    app[runner_key] = runner
    try:
        yield
    finally:
        await runner.stop()


async def docker_context(app: web.Application) -> AsyncIterator[None]:
    async with DockerAdapter(app[settings_key].docker_host) as docker:
        app[docker_key] = docker
        yield


def create_app(settings: Settings) -> web.Application:
    token = settings.require_auth_token()
    app = web.Application(
        middlewares=[error_middleware, auth_middleware(token)], client_max_size=MAX_BODY_BYTES
    )
    app[settings_key] = settings
    app.cleanup_ctx.extend([store_context, runner_context, docker_context])
    for module in (system_api, events_api, health_api):
        module.add_routes(app)
    return app
