"""The legacy single-tool routes of today's backend: `/tools...` and `GET /status`.

They keep the original's envelope, `{success, message?, data?}` and `{success: false, error}`,
for refusals too (`legacy_envelope` renders them with the status the service gives them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from service import errors, status
from service.api import routes
from service.api.keys import context_key, instance_key, puller_key, runner_key
from service.api.legacy import schemas as tool_schemas
from service.api.middlewares import translate
from service.api.routes import Param, Reply, Route
from service.api.wire import command_meta, read_json, wait_min_position
from service.backend import system_metrics
from service.legacy import decisions as decide
from service.legacy import handlers as legacy

logger = logging.getLogger(__name__)

CREATED = 201
REQUIRED = ("dockerImageUrl", "instanceNameOnToolbox", "accountToolInstanceId")


async def create(request: web.Request) -> web.Response:
    command, body = await read_create_tool(request)
    app, meta = request.app, command_meta(request, body)
    tool = await legacy.create_tool(app[context_key], app[puller_key], command, meta)
    data = {**created_json(tool), "state": tool.status}
    return answer(f"Tool '{tool.name}' deployed successfully.", data, status=CREATED)


async def remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    command = decide.RemoveTool(name=name)
    await legacy.remove_tool(request.app[context_key], command, command_meta(request, b""))
    return answer(f"Tool instance '{name}' removed successfully.")


async def start(request: web.Request) -> web.Response:
    return await _scale(request, 1, "started")


async def stop(request: web.Request) -> web.Response:
    return await _scale(request, 0, "stopped")


async def _scale(request: web.Request, replicas: int, done: str) -> web.Response:
    command = decide.ScaleTool(name=request.match_info["name"], replicas=replicas)
    meta = command_meta(request, b"")
    tool = await legacy.scale_tool(request.app[context_key], command, meta)
    return answer(f"Tool instance '{tool.name}' {done}.", {"state": tool.status})


async def overview(request: web.Request) -> web.Response:
    """GET /status: the host's figures and every tool; `version` and `environment` repeat
    `dtma_version` and `system_metrics` for older callers."""
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    version, metrics = system_metrics.dtma_version(), system_metrics.read()
    tools = legacy.every_tool(runner)
    return web.json_response(
        {
            "dtma_version": version,
            "version": version,
            "instance": request.app[instance_key],
            "system_metrics": metrics,
            "environment": metrics,
            "tool_instances": [status_json(tool) for tool in tools],
        }
    )


def answer(message: str, data: dict[str, Any] | None = None, status: int = 200) -> web.Response:
    body: dict[str, Any] = {"success": True, "message": message}
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=status)


def created_json(tool: legacy.Tool) -> dict[str, Any]:
    legacy_tool = tool.server.spec.legacy
    return {
        "container_id": tool.instance.container_id if tool.instance else None,
        "instance_name_on_toolbox": tool.name,
        "account_tool_instance_id": legacy_tool.account_tool_instance_id if legacy_tool else None,
        "image": tool.server.spec.image,
        "ports": port_map(tool),
    }


def status_json(tool: legacy.Tool) -> dict[str, Any]:
    return {
        **{k: v for k, v in created_json(tool).items() if k != "ports"},
        "status": tool.status,
        "created": tool.server.declared_at,
    }


def port_map(tool: legacy.Tool) -> dict[str, list[dict[str, str]]]:
    """The tool's published ports in Docker's own shape, as the original answered them."""
    spec = tool.server.spec
    ports: dict[str, list[dict[str, str]]] = {}
    for container_port, host_port in spec.host_ports:
        ports.setdefault(f"{container_port}/tcp", []).append(_binding(host_port))
    if tool.instance is not None and tool.instance.host_port is not None:
        ports.setdefault(f"{spec.port}/tcp", [_binding(tool.instance.host_port)])
    return ports


def _binding(host_port: int) -> dict[str, str]:
    return {"HostIp": status.LOOPBACK, "HostPort": str(host_port)}


async def read_create_tool(request: web.Request) -> tuple[decide.CreateTool, bytes]:
    """POST /tools's body; anything missing or malformed is a 400, as it was."""
    data, body = await read_json(request)
    if not isinstance(data, dict):
        raise errors.MalformedRequestError("the body must be a JSON object")
    missing = [field for field in REQUIRED if not data.get(field)]
    if missing:
        raise errors.MalformedRequestError(
            "Missing required fields: " + ", ".join(missing), code="missing_fields"
        )
    try:
        return decide.CreateTool.model_validate(data, by_alias=True, by_name=False), body
    except ValidationError as exc:
        problems = [
            ".".join(str(part) for part in error["loc"]) + ": " + error["msg"]
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise errors.MalformedRequestError(
            "Invalid fields: " + "; ".join(problems), code="invalid_fields"
        ) from None


def is_legacy(path: str) -> bool:
    return path in ("/status", "/tools") or path.startswith("/tools/")


@web.middleware
async def legacy_envelope(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """Refusals on the legacy routes, authentication's included, as `{success: false, error}`
    with the status the service gives them (placed between the error and auth middlewares)."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except Exception as exc:
        if not is_legacy(request.path) or (isinstance(exc, web.HTTPException) and exc.status < 400):
            raise
        error = translate(exc)
        if error is None:
            logger.exception("unhandled error in %s %s", request.method, request.path)
            error = errors.ServiceError("internal error")
        return web.json_response({"success": False, "error": error.message}, status=error.status)


def legacy_failures(*statuses: int) -> dict[int, Reply]:
    return routes.failures(*statuses, model=tool_schemas.LegacyFailure)


TOOL_NAME = Param(
    "name", "path", {"type": "string"}, "the tool's instanceNameOnToolbox", required=True
)
SCALE_REPLIES = {
    **routes.ok("done", tool_schemas.ToolScaled),
    **legacy_failures(401, 404, 409, 422, 502, 503, 504),
}

ROUTES = (
    Route(
        "POST",
        "/tools",
        create,
        "Deploy a tool (legacy): an MCP server with one replica in the group `legacy`",
        {
            **routes.ok("the tool runs", tool_schemas.ToolCreated, CREATED),
            **legacy_failures(400, 401, 404, 409, 413, 422, 502, 503, 504),
        },
        body=decide.CreateTool,
        params=routes.COMMAND_HEADERS,
        tag="legacy",
    ),
    Route(
        "DELETE",
        "/tools/{name}",
        remove,
        "Remove a tool (legacy)",
        {
            **routes.ok("removed", tool_schemas.ToolRemoved),
            **legacy_failures(401, 404, 409, 422, 503),
        },
        params=(TOOL_NAME, *routes.COMMAND_HEADERS),
        tag="legacy",
    ),
    Route(
        "POST",
        "/tools/{name}/start",
        start,
        "Start a tool (legacy)",
        SCALE_REPLIES,
        params=(TOOL_NAME, *routes.COMMAND_HEADERS),
        tag="legacy",
    ),
    Route(
        "POST",
        "/tools/{name}/stop",
        stop,
        "Stop a tool (legacy); stopping a stopped tool is 200",
        SCALE_REPLIES,
        params=(TOOL_NAME, *routes.COMMAND_HEADERS),
        tag="legacy",
    ),
    Route(
        "GET",
        "/status",
        overview,
        "The host's figures and every tool (legacy)",
        {
            **routes.ok("the host and its tools", tool_schemas.HostOverview),
            **legacy_failures(401, 422, 503, 504),
        },
        params=(routes.MIN_POSITION,),
        tag="legacy",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
