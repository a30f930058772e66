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
from eventstore import audit as eventstore_audit
from eventstore import engines, errors, keyring
from eventstore import store as eventstore_store
from projections import ALL, events
from projections import runner as projections_runner
from service import instance, logs, loops, metrics, status
from service.access import token_store, tokens
from service.api import audit as audit_api
from service.api import config as config_api
from service.api import credentials as credentials_api
from service.api import events as events_api
from service.api import groups as groups_api
from service.api import health as health_api
from service.api import keys, middlewares, rendered, routes, stream_slots
from service.api import openapi as openapi_api
from service.api import registries as registries_api
from service.api import servers as servers_api
from service.api import stdio as stdio_api
from service.api import system as system_api
from service.api.legacy import tools as tools_api
from service.audit import checkpoints as audit
from service.backend import client as backend_client
from service.backend import heartbeat, system_metrics
from service.config import applier as config_applier
from service.config import handlers as configuration
from service.credentials import handlers as credential_handlers
from service.credentials import injector as credentials_injector
from service.credentials import oauth
from service.docker import adapter
from service.handling import context, handlers
from service.health import monitor as health_monitor
from service.legacy import handlers as legacy
from service.metrics import Metrics
from service.orchestration import listener as orchestration_listener
from service.orchestration import reconciler as orchestration_reconciler
from service.outbound import OutboundPolicy
from service.registries import handlers as registry_handlers
from service.registries import pulls
from service.settings import Settings, SettingsError
from service.stdio import bridges

# The token the health monitor's probes of stdio servers show DTMA's own API (their bridges are
# served there): an operator's, made afresh at each start, known to this process alone. Its name
# is upper case, which no listed or stored token's can be.
BRIDGE_PROBE_TOKEN = "DTMA_STDIO_PROBE"
bridge_probe_key = web.AppKey("dtma.bridge_probe_token", str)


async def open_store(settings: Settings) -> eventstore_store.EventStore:
    """The store on a database brought to the newest schema."""
    engine = engines.create_engine(settings.database_url)
    await migrations.upgrade(engine)
    return await eventstore_store.EventStore.open(
        settings.database_url, engine=engine, catalogue=events.CATALOGUE
    )


async def open_reader(settings: Settings) -> eventstore_store.EventStore:
    """The store for `replay`, `events` and `audit verify`: opened read-only, on a database
    already at the newest schema. It never migrates: it raises migrations.RevisionError."""
    _require_database(settings.database_url)
    store = await eventstore_store.EventStore.open_read_only(settings.database_url)
    try:
        await migrations.require_head(store.engine)
    except (sa.exc.DBAPIError, OSError) as exc:  # the first query: refused, unreachable
        await store.close()
        cause = getattr(exc, "orig", None) or exc
        raise errors.StoreUnavailableError(f"cannot read the database: {cause}") from exc
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
    store = await open_store(app[keys.settings_key])
    store.append_observers.append(app[keys.metrics_key].appended)
    app[keys.store_key] = store
    try:
        app[keys.instance_key] = await instance.identify(store)
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
    key_file = Path(app[keys.settings_key].key_file)
    app[keys.ring_key] = await keyring.load_ring(app[keys.store_key].engine, key_file)
    yield


async def runner_context(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.store_key]
    runner = projections_runner.ProjectionRunner(
        store, events.CATALOGUE, ALL, snapshot_every=app[keys.settings_key].snapshot_every
    )
    app[keys.metrics_key].watch(runner)  # first: a failure met while catching up is counted too
    await runner.start()
    app[keys.runner_key] = runner
    try:
        yield
    finally:
        await runner.stop()


async def checkpoint_context(app: web.Application) -> AsyncIterator[None]:
    """Signs checkpoints while the app runs, with the audit key from the key ring (created on
    the first start, kept wrapped by the master key)."""
    signer = await app[keys.ring_key].audit_signer()
    checkpointer = eventstore_audit.Checkpointer(
        app[keys.store_key], signer, app[keys.settings_key].checkpoint_every
    )
    signing = audit.CheckpointSigner(checkpointer, app[keys.runner_key]).run
    task = _supervised("checkpoint-signer", signing, app[keys.metrics_key].loop_failed)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def docker_context(app: web.Application) -> AsyncIterator[None]:
    async with adapter.DockerAdapter(app[keys.settings_key].docker_host) as docker:
        app[keys.docker_key] = docker
        app[keys.puller_key] = pulls.ImagePuller(app[keys.runner_key], docker, app[keys.ring_key])
        yield


async def backend_context(app: web.Application) -> AsyncIterator[None]:
    """The client of the backend, when `DTMA_BACKEND_URL` names one."""
    settings = app[keys.settings_key]
    if settings.backend_url is None:
        yield
        return
    async with aiohttp.ClientSession() as session:
        app[keys.backend_key] = backend_client.BackendClient(
            settings.backend_url, settings.backend_token, session
        )
        yield


async def commands_context(app: web.Application) -> AsyncIterator[None]:
    """The context commands are handled in, with the one table of every feature's handlers
    (some given the parts they use: the key ring, the backend, Docker)."""
    table = handlers.one_table(
        handlers.COMMAND_HANDLERS,
        configuration.COMMAND_HANDLERS,
        credential_handlers.command_handlers(app[keys.ring_key], app.get(keys.backend_key)),
        legacy.command_handlers(app[keys.puller_key]),
        registry_handlers.command_handlers(app[keys.ring_key]),
    )
    app[keys.context_key] = context.CommandContext(
        store=app[keys.store_key],
        catalogue=events.CATALOGUE,
        runner=app[keys.runner_key],
        policy=app[keys.settings_key].policy(),
        handlers=table,
    )
    yield


def heartbeat_payload(runner: projections_runner.ProjectionRunner, api_url: str) -> dict[str, Any]:
    models = status.ReadModels.of(runner, api_url)
    return heartbeat.heartbeat_payload(
        system_metrics.dtma_version(),
        system_metrics.read(),
        heartbeat.tool_statuses(legacy.every_tool(runner)),
        [status.server_status(models, s).wire() for s in sorted(models.desired.servers)],
    )


async def supervisor_context(app: web.Application) -> AsyncIterator[None]:
    """What acts, running until the app stops: the reconciler, the Docker listener, the health
    monitor, the credential injector and refresher, the config applier, and (with a backend)
    the heartbeat."""
    settings = app[keys.settings_key]
    reconciler = orchestration_reconciler.Reconciler(
        app[keys.store_key],
        app[keys.runner_key],
        app[keys.docker_key],
        events.CATALOGUE,
        owner_labels=settings.owner_labels,
        instance_id=app[keys.instance_key],
        interval=settings.reconcile_interval_s,
        ring=app[keys.ring_key],
        policy=settings.policy(),
        puller=app[keys.puller_key],
        reach=settings.reach,
    )
    listener = orchestration_listener.DockerListener(
        app[keys.store_key],
        app[keys.runner_key],
        app[keys.docker_key],
        events.CATALOGUE,
        reconciler,
    )
    failed = app[keys.metrics_key].loop_failed
    monitor = health_monitor.HealthMonitor(
        app[keys.store_key],
        app[keys.runner_key],
        events.CATALOGUE,
        failed=failed,
        api_url=app[keys.api_url_key],
        bridge_token=app[bridge_probe_key],
    )
    stdio_bridges = bridges.Bridges(app[keys.runner_key], app[keys.docker_key])
    monitor.probe_observers.append(app[keys.metrics_key].probed)
    refresher = oauth.Refresher(
        app[keys.context_key],
        app[keys.ring_key],
        app.get(keys.backend_key),
        OutboundPolicy(settings.outbound_allow),
    )
    injector = credentials_injector.CredentialInjector(
        app[keys.store_key],
        app[keys.runner_key],
        app[keys.docker_key],
        app[keys.ring_key],
        events.CATALOGUE,
    )
    applier = config_applier.ConfigApplier(
        app[keys.store_key], app[keys.runner_key], app[keys.docker_key], events.CATALOGUE
    )
    app[keys.reconciler_key] = reconciler
    app[keys.monitor_key] = monitor
    app[keys.bridges_key] = stdio_bridges
    loops_by_name: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("reconciler", reconciler.run),
        ("docker-listener", listener.run),
        ("health-monitor", monitor.run),
        ("credential-injector", injector.run),
        ("credential-refresher", refresher.run),
        ("config-applier", applier.run),
        ("stdio-bridges", stdio_bridges.run),
    ]
    if (client := app.get(keys.backend_key)) is not None:
        runner = app[keys.runner_key]
        beat = heartbeat.Heartbeat(
            client,
            lambda: heartbeat_payload(runner, app[keys.api_url_key]),
            settings.heartbeat_interval_s,
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
        probe = tokens.Token(BRIDGE_PROBE_TOKEN, "operator", tokens.digest(app[bridge_probe_key]))
        table = token_store.TokenTable([*configured, probe], app[keys.store_key].engine)
        await table.refresh()
        if len(table) == 1:  # the probes' own token is no token for a person
            raise SettingsError(NO_TOKEN)
        app[keys.tokens_key] = table
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
            middlewares.error_middleware,
            tools_api.legacy_envelope,
            middlewares.auth_middleware(
                routes.required_role, lambda request: request.app[keys.tokens_key]
            ),
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[keys.settings_key] = settings
    app[keys.api_url_key] = status.api_url(settings.host, settings.port)
    app[bridge_probe_key] = tokens.new_token()
    app[keys.metrics_key] = measured
    app[keys.statuses_key] = rendered.RenderedAt()
    app[keys.streams_key] = stream_slots.StreamSlots(settings.max_streams_per_token)
    app.cleanup_ctx.extend(
        [
            store_context,
            tokens_context(configured),
            ring_context,
            runner_context,
            checkpoint_context,
            docker_context,
            backend_context,
            commands_context,
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
        stdio_api,
        registries_api,
    ):
        module.add_routes(app)
    openapi_api.add_routes(app)  # its document, built at startup, covers every route above
    return app
