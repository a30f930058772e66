"""Request parsing and answers shared by the routes: JSON bodies, query integers,
read-your-writes waits, command metadata, and every answer made from its model."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from projections.runner import ProjectionRunner
from service import errors
from service.api import json_limits
from service.api.keys import runner_key, settings_key
from service.api.middlewares import actor_key, validation_error
from service.handling import answers, commands, handlers

M = TypeVar("M", bound=BaseModel)
A = TypeVar("A", bound=answers.Answer)
MIN_POSITION_WAIT_S = 5.0
MAX_IDEMPOTENCY_KEY = 200
MAX_INTEGER = 2**63 - 1  # positions are 64-bit: what SQLite and PostgreSQL store and compare


def answer(model: BaseModel, status: int = 200, exclude: set[str] | None = None) -> web.Response:
    """The model as JSON: its aliases as keys, and a field given no value left out."""
    body = model.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude=exclude)
    return web.json_response(body, status=status)


def answer_as(model: type[A], found: Mapping[str, Any], status: int = 200) -> web.Response:
    """A command handler's answer (a dict: it is also the result kept for its idempotency key)
    made into its model, so that nothing but the model's fields reaches the wire."""
    return answer(model.model_validate(found), status)


async def read_json(request: web.Request) -> tuple[Any, bytes]:
    """The body parsed, within the JSON limits (json_limits.py): 400 if it is not JSON, 422
    where it goes over a limit, 413 (from aiohttp) past DTMA_MAX_BODY_BYTES."""
    body = await request.read()
    if not body.strip():
        raise errors.MalformedRequestError("a JSON body is required", code="malformed_json")
    limits = json_limits.JsonLimits.of(request.app[settings_key])
    try:
        data = json.loads(body)
    except RecursionError:  # deeper than the parser goes: far past any limit
        raise json_limits.nesting_error(limits) from None
    except (ValueError, UnicodeDecodeError):
        raise errors.MalformedRequestError(
            "the body is not valid JSON", code="malformed_json"
        ) from None
    json_limits.check(data, limits)
    return data, body


async def read_command(request: web.Request, model: type[M]) -> tuple[M, bytes]:
    data, body = await read_json(request)
    if not isinstance(data, dict):
        raise errors.ValidationFailedError(
            "the body must be a JSON object",
            details=[{"field": "", "message": "expected an object"}],
        )
    try:
        return model.model_validate(data, by_alias=True, by_name=False), body
    except ValidationError as exc:
        raise validation_error(exc) from None


def query_int(
    request: web.Request, name: str, default: int, low: int = 0, high: int = MAX_INTEGER
) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        bound = f"between {low} and {high}"
        raise errors.ValidationFailedError(
            f"query parameter {name} must be an integer {bound}",
            details=[{"field": name, "message": f"must be an integer {bound}"}],
        )
    return value


async def wait_min_position(request: web.Request, runner: ProjectionRunner) -> None:
    """`?minPosition=N`: wait until the projections have folded N, up to 5 s, then 504."""
    wanted = query_int(request, "minPosition", 0)
    if wanted > runner.position:
        runner.require_readable()  # stopped: 503 at once, not a 504 after the wait
    if wanted and not await runner.wait_for(wanted, MIN_POSITION_WAIT_S):
        raise errors.TimedOutError(
            f"the read model has not reached position {wanted} within {MIN_POSITION_WAIT_S:g} s",
            details=[{"field": "minPosition", "position": runner.position}],
        )


def command_meta(request: web.Request, body: bytes) -> handlers.CommandMeta:
    """Who asks, and why. Every command passes here: while the projections are stopped before
    an event, none is decided (503), since each would decide on state the log has moved past."""
    request.app[runner_key].require_readable()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise errors.ValidationFailedError(
            "Idempotency-Key must be 1 to 200 printable characters",
            details=[{"field": "Idempotency-Key", "message": "1 to 200 printable characters"}],
        )
    return handlers.CommandMeta(
        actor=request.get(actor_key, "anonymous"),
        correlation_id=_request_id(request) or str(uuid.uuid4()),
        idempotency_key=key,
        request_hash=handlers.request_hash(request.method, request.path_qs, body),
    )


def _request_id(request: web.Request) -> str | None:
    """The caller's X-Request-ID, if it is short and printable enough to store."""
    given = request.headers.get("X-Request-ID", "")
    return given if 0 < len(given) <= MAX_IDEMPOTENCY_KEY and given.isprintable() else None


def path_id(request: web.Request) -> str:
    """The `{id}` of the path, held to the id pattern like any id in a body."""
    value = request.match_info["id"]
    try:
        commands.RemoveGroup(group_id=value)
    except ValueError:
        raise errors.ValidationFailedError(
            "ids match ^[a-z0-9][a-z0-9-]{0,62}$",
            details=[{"field": "id", "message": "must match ^[a-z0-9][a-z0-9-]{0,62}$"}],
        ) from None
    return value
