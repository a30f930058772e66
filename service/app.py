"""The composition root: `create_app(settings)` wires store, projections and Docker into aiohttp.

Nothing is built at import time. Cleanup contexts start in dependency order and stop in reverse.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import make_url

import migrations
from eventstore.audit import Checkpointer
from eventstore.errors import StoreUnavailableError
from eventstore.keyring import load_ring
from eventstore.store import EventStore, create_engine
from projections import ALL, events
from projections.runner import ProjectionRunner
from service import instance, logs, loops, metrics, status
from service.access import tokens
from service.access.token_store import TokenTable
from service.api import audit as audit_api
from service.api import config as config_api
from service.api import credentials as credentials_api
from service.api import events as events_api
from service.api import groups as groups_api
from service.api import health as health_api
from service.api import openapi as openapi_api
from service.api import routes
from service.api import servers as servers_api
from service.api import system as system_api
from service.api.keys import (
    backend_key,
    context_key,
    docker_key,
    instance_key,
    metrics_key,
    monitor_key,
    reconciler_key,
    ring_key,
    runner_key,
    settings_key,
    statuses_key,
    store_key,
    streams_key,
    tokens_key,
)
from service.api.legacy import tools as tools_api
from service.api.middlewares import auth_middleware, error_middleware
from service.api.rendered import RenderedAt
from service.api.stream_slots import StreamSlots
from service.audit import checkpoints as audit
from service.backend import heartbeat, system_metrics
from service.backend.client import BackendClient
from service.config.applier import ConfigApplier
from service.credentials.injector import CredentialInjector
from service.credentials.oauth import Refresher
from service.docker.adapter import DockerAdapter
from service.handling.handlers import CommandContext
from service.health.monitor import HealthMonitor
from service.legacy import handlers as legacy
from service.metrics import Metrics
from service.orchestration.listener import DockerListener
from service.orchestration.reconciler import Reconciler
from service.outbound import OutboundPolicy
from service.settings import Settings, SettingsError
from service.status import ReadModels


async def open_store(settings: Settings) -> EventStore:
    """The store on a database brought to the newest schema."""
    engine = create_engine(settings.database_url)
    await migrations.upgrade(engine)
    return await EventStore.open(settings.database_url, engine=engine, catalogue=events.CATALOGUE)


async def open_reader(settings: Settings) -> EventStore:
    """The store for `replay`, `events` and `audit verify`: opened read-only, on a database
    already at the newest schema. It never migrates: it raises migrations.RevisionError."""
    _require_database(settings.database_url)
    store = await EventStore.open_read_only(settings.database_url)
    try:
        await migrations.require_head(store.engine)
    except (sa.exc.DBAPIError, OSError) as exc:  # the first query: refused, unreachable
        await store.close()
        cause = getattr(exc, "orig", None) or exc
        raise StoreUnavailableError(f"cannot read the database: {cause}") from exc
    except BaseException:
        await store.close()
        raise
    return store


def _require_database(url: str) -> None:
    """A SQLite file that is not there is a mistake, not an empty log to create."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise SettingsError(f"there is no database file at {parsed.database!r}")


async def store_context(app: web.Application) -> AsyncIterator[None]:
    store = await open_store(app[settings_key])
    store.append_observers.append(app[metrics_key].appended)
    app[store_key] = store
    try:
        app[instance_key] = await instance.identify(store)
    except BaseException:
        await store.close()
        raise
    try:
        yield
    finally:
        await store.close()


async def ring_context(app: web.Application) -> AsyncIterator[None]:
    """The key ring: data keys wrapped by the master key in DTMA_KEY_FILE (made on first
    start, mode 0600)."""
    key_file = Path(app[settings_key].key_file)
    app[ring_key] = await load_ring(app[store_key].engine, key_file)
    yield


async def runner_context(app: web.Application) -> AsyncIterator[None]:
    store = app[store_key]
    runner = ProjectionRunner(
        store, events.CATALOGUE, ALL, snapshot_every=app[settings_key].snapshot_every
    )
    app[metrics_key].watch(runner)  # first: a failure met while catching up is counted too
    await runner.start()
    app[runner_key] = runner
    app[context_key] = CommandContext(
        store=store,
        catalogue=events.CATALOGUE,
        runner=runner,
        policy=app[settings_key].policy(),
    )
    try:
        yield
    finally:
        await runner.stop()


async def checkpoint_context(app: web.Application) -> AsyncIterator[None]:
    """Signs checkpoints while the app runs, with the audit key from the key ring (created on
    the first start, kept wrapped by the master key)."""
    signer = await app[ring_key].audit_signer()
    checkpointer = Checkpointer(app[store_key], signer, app[settings_key].checkpoint_every)
    signing = audit.CheckpointSigner(checkpointer, app[runner_key]).run
    task = _supervised("checkpoint-signer", signing, app[metrics_key].loop_failed)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def docker_context(app: web.Application) -> AsyncIterator[None]:
    async with DockerAdapter(app[settings_key].docker_host) as docker:
        app[docker_key] = docker
        yield


async def backend_context(app: web.Application) -> AsyncIterator[None]:
    """The client of the backend, when `DTMA_BACKEND_URL` names one."""
    settings = app[settings_key]
    if settings.backend_url is None:
        yield
        return
    async with aiohttp.ClientSession() as session:
        app[backend_key] = BackendClient(settings.backend_url, settings.backend_token, session)
        yield


def heartbeat_payload(runner: ProjectionRunner) -> dict[str, Any]:
    models = ReadModels.of(runner)
    return heartbeat.heartbeat_payload(
        system_metrics.dtma_version(),
        system_metrics.read(),
        heartbeat.tool_statuses(legacy.every_tool(runner)),
        [status.server_status(models, s) for s in sorted(models.desired.servers)],
    )


async def supervisor_context(app: web.Application) -> AsyncIterator[None]:
    """What acts, running until the app stops: the reconciler, the Docker listener, the health
    monitor, the credential injector and refresher, the config applier, and (with a backend)
    the heartbeat."""
    settings = app[settings_key]
    reconciler = Reconciler(
        app[store_key],
        app[runner_key],
        app[docker_key],
        events.CATALOGUE,
        owner_labels=settings.owner_labels,
        instance_id=app[instance_key],
        interval=settings.reconcile_interval_s,
        ring=app[ring_key],
        policy=settings.policy(),
        reach=settings.reach,
    )
    listener = DockerListener(
        app[store_key], app[runner_key], app[docker_key], events.CATALOGUE, reconciler
    )
    failed = app[metrics_key].loop_failed
    monitor = HealthMonitor(app[store_key], app[runner_key], events.CATALOGUE, failed=failed)
    monitor.probe_observers.append(app[metrics_key].probed)
    refresher = Refresher(
        app[context_key],
        app[ring_key],
        app.get(backend_key),
        OutboundPolicy(settings.outbound_allow),
    )
    injector = CredentialInjector(
        app[store_key], app[runner_key], app[docker_key], app[ring_key], events.CATALOGUE
    )
    applier = ConfigApplier(app[store_key], app[runner_key], app[docker_key], events.CATALOGUE)
    app[reconciler_key] = reconciler
    app[monitor_key] = monitor
    loops_by_name: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("reconciler", reconciler.run),
        ("docker-listener", listener.run),
        ("health-monitor", monitor.run),
        ("credential-injector", injector.run),
        ("credential-refresher", refresher.run),
        ("config-applier", applier.run),
    ]
    if (client := app.get(backend_key)) is not None:
        runner = app[runner_key]
        beat = heartbeat.Heartbeat(
            client, lambda: heartbeat_payload(runner), settings.heartbeat_interval_s
        )
        monitor.listeners.append(beat.poke)  # a circuit that opens or closes is told at once
        loops_by_name.append(("heartbeat", beat.run))
    tasks = [_supervised(name, loop, failed) for name, loop in loops_by_name]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# Their exceptions may quote a fragment of a credential: only the type is logged.
HOLDING_SECRETS = frozenset({"credential-injector", "credential-refresher"})


def _supervised(
    name: str, loop: Callable[[], Awaitable[None]], failed: Callable[[str], None]
) -> asyncio.Task[None]:
    supervised = loops.supervise(name, loop, failed, traceback=name not in HOLDING_SECRETS)
    return asyncio.create_task(supervised, name=f"dtma-{name}")


def tokens_context(configured: list[tokens.Token]) -> Any:
    """The table of tokens the auth middleware checks; no token at all refuses to start."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        table = TokenTable(configured, app[store_key].engine)
        await table.refresh()
        if not len(table):
            raise SettingsError(NO_TOKEN)
        app[tokens_key] = table
        yield

    return context


NO_TOKEN = (
    "no API token: set DTMA_AUTH_TOKEN (env, or a DTMA_AUTH_TOKEN= line in /etc/dtma.conf), "
    "list tokens in DTMA_TOKENS_FILE, or add one with `dtma token add NAME --role admin`"
)


def create_app(settings: Settings) -> web.Application:
    logs.quiet_libraries()  # however logging was set up: statements carry wrapped keys
    configured = tokens.configured(settings)
    measured = Metrics()
    app = web.Application(
        middlewares=[
            metrics.middleware(measured),  # outermost: it sees every answer as sent
            error_middleware,
            tools_api.legacy_envelope,
            auth_middleware(routes.required_role, lambda request: request.app[tokens_key]),
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[settings_key] = settings
    app[metrics_key] = measured
    app[statuses_key] = RenderedAt()
    app[streams_key] = StreamSlots(settings.max_streams_per_token)
    app.cleanup_ctx.extend(
        [
            store_context,
            tokens_context(configured),
            ring_context,
            runner_context,
            checkpoint_context,
            docker_context,
            backend_context,
            supervisor_context,
        ]
    )
    for module in (
        system_api,
        events_api,
        audit_api,
        health_api,
        servers_api,
        groups_api,
        tools_api,
        credentials_api,
        config_api,
    ):
        module.add_routes(app)
    openapi_api.add_routes(app)  # its document, built at startup, covers every route above
    return app
