"""Configuration routes: templates, a server's configuration (versions, history, which replica
holds which) and rollback."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from projections import config as read_model
from projections import groups
from service import errors
from service.api import routes, wire
from service.api.keys import context_key, runner_key, settings_key
from service.api.routes import Route
from service.api.wire import command_meta, read_command, wait_min_position
from service.config import handlers as configuration
from service.handling import answers, commands

CREATED = 201
ACCEPTED = 202


async def define_template(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.DefineTemplate)
    meta = command_meta(request, body)
    answer = await configuration.define_template(request.app[context_key], command, meta)
    return wire.answer_as(TemplateDefined, answer, status=CREATED)


async def get_template(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    template_id = wire.path_id(request)
    template = runner.state(read_model.PROJECTION).templates.get(template_id)
    if template is None:
        raise errors.NotFoundError(f"no config template {template_id!r}")
    return wire.answer(template_read(template))


async def configure(request: web.Request) -> web.Response:
    server_id = wire.path_id(request)
    command, body = await read_command(request, commands.ConfigureServer)
    environment = request.app[settings_key].environment
    answer = await configuration.configure_server(
        request.app[context_key], server_id, command, environment, command_meta(request, body)
    )
    return wire.answer_as(ConfigAccepted, answer, status=ACCEPTED)


async def rollback(request: web.Request) -> web.Response:
    server_id = wire.path_id(request)
    command, body = await read_command(request, commands.RollbackConfig)
    answer = await configuration.rollback_config(
        request.app[context_key], server_id, command, command_meta(request, body)
    )
    return wire.answer_as(ConfigAccepted, answer, status=ACCEPTED)


async def server_config(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    server_id = wire.path_id(request)
    if server_id not in runner.state(groups.PROJECTION).servers:
        raise errors.NotFoundError(f"no MCP server {server_id!r}")
    server = runner.state(read_model.PROJECTION).of(server_id)
    return wire.answer(server_config_read(server_id, server, runner.position))


# -- the answers' shapes, for the OpenAPI document --------------------------------------------


class TemplateDefined(answers.Answer):
    id: str
    position: int = Field(description="where the template was defined (also for a repeat)")


class TemplateRead(answers.Answer):
    id: str
    json_schema: dict[str, Any] = Field(alias="schema")
    defaults: dict[str, Any]
    environments: dict[str, dict[str, Any]]
    position: int
    defined_at: str


class ConfigAccepted(answers.Answer):
    version: int
    position: int


class ConfigHistoryEntry(answers.Answer):
    version: int
    position: int
    at: str
    template_id: str | None
    rolled_back_from: int | None


class ConfigHeld(answers.Answer):
    replica: int
    container_id: str
    version: int
    at: str


class ServerConfigRead(answers.Answer):
    mcp_server_id: str
    version: int = Field(description="0 while never configured")
    config: dict[str, Any]
    template_id: str | None
    environment: str | None
    rolled_back_from: int | None
    history: list[ConfigHistoryEntry]
    applied: list[ConfigHeld] = Field(description="the version each replica's container holds")
    last_error: str | None
    position: int


def template_read(template: read_model.Template) -> TemplateRead:
    return TemplateRead(
        id=template.id,
        json_schema=template.json_schema,
        defaults=template.defaults,
        environments=template.environments,
        position=template.position,
        defined_at=template.defined_at,
    )


def server_config_read(
    server_id: str, server: read_model.ServerConfig, position: int
) -> ServerConfigRead:
    """Version 0 and {} for a server never configured."""
    active = server.active()
    return ServerConfigRead(
        mcp_server_id=server_id,
        version=server.current,
        config=active.config if active else {},
        template_id=active.template_id if active else None,
        environment=active.environment if active else None,
        rolled_back_from=active.rolled_back_from if active else None,
        history=[
            ConfigHistoryEntry(
                version=v.version,
                position=v.position,
                at=v.at,
                template_id=v.template_id,
                rolled_back_from=v.rolled_back_from,
            )
            for _, v in sorted(server.versions.items())
        ],
        applied=[
            ConfigHeld(replica=a.replica, container_id=cid, version=a.version, at=a.at)
            for cid, a in sorted(server.applied.items(), key=lambda item: item[1].replica)
        ],
        last_error=server.last_error,
        position=position,
    )


TEMPLATE_ID = routes.id_param("the config template's id")
SERVER_ID = routes.id_param("the MCP server's id")
COMMAND_ERRORS = routes.failures(400, 401, 404, 409, 413, 422, 503)
READ_ERRORS = routes.failures(401, 404, 422, 503, 504)

ROUTES = (
    Route(
        "POST",
        "/config-templates",
        define_template,
        "Define a config template: a JSON Schema, defaults, per-environment overrides",
        {
            **routes.ok("defined (or defined already with this body)", TemplateDefined, CREATED),
            **routes.failures(400, 401, 409, 413, 422, 503),
        },
        body=commands.DefineTemplate,
        params=routes.COMMAND_HEADERS,
        tag="configuration",
    ),
    Route(
        "GET",
        "/config-templates/{id}",
        get_template,
        "A config template",
        {**routes.ok("the template", TemplateRead), **READ_ERRORS},
        params=(TEMPLATE_ID, routes.MIN_POSITION),
        tag="configuration",
    ),
    Route(
        "PUT",
        "/mcp-servers/{id}/config",
        configure,
        "Configure a server: validated, versioned, written into every replica",
        {**routes.ok("accepted: the version", ConfigAccepted, ACCEPTED), **COMMAND_ERRORS},
        body=commands.ConfigureServer,
        params=(SERVER_ID, *routes.COMMAND_HEADERS),
        tag="configuration",
    ),
    Route(
        "GET",
        "/mcp-servers/{id}/config",
        server_config,
        "A server's current configuration, its history and which replica holds which",
        {**routes.ok("the configuration", ServerConfigRead), **READ_ERRORS},
        params=(SERVER_ID, routes.MIN_POSITION),
        tag="configuration",
    ),
    Route(
        "POST",
        "/mcp-servers/{id}/config/rollback",
        rollback,
        "Make an earlier configuration version current again, as a new version",
        {**routes.ok("accepted: the new version", ConfigAccepted, ACCEPTED), **COMMAND_ERRORS},
        body=commands.RollbackConfig,
        params=(SERVER_ID, *routes.COMMAND_HEADERS),
        tag="configuration",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
