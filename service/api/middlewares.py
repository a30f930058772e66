"""The one error middleware (the contract's error shape) and bearer-token authentication."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from eventstore import errors as store_errors
from projections import runner
from service import errors
from service.access import token_store, tokens
from service.api import schemas
from service.api.legacy import schemas as tool_schemas
from service.handling import answers

logger = logging.getLogger(__name__)

# Who the bearer token says the caller is: the actor of the events its commands append.
actor_key = web.RequestKey("dtma.actor", str)
role_key = web.RequestKey("dtma.role", str)  # and what it may do
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
}


def validation_error(
    exc: ValidationError, message: str = "the request is not valid"
) -> errors.ServiceError:
    """Pydantic's errors as 422 details, one per field; the offending input is never echoed."""
    details = [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors(include_input=False, include_url=False)
    ]
    return errors.ValidationFailedError(message, details=details)


def _from_http(exc: web.HTTPException) -> errors.ServiceError:
    error = errors.ServiceError(exc.reason, code=HTTP_CODES.get(exc.status, "http_error"))
    error.status = exc.status
    if exc.status == 413:
        error.message = "the request body is too large"
    return error


def _from_conflict(exc: store_errors.VersionConflictError) -> errors.ServiceError:
    return errors.ConflictError(
        "the resource was changed concurrently; read it again and retry",
        code="version_conflict",
        details=[{"streamId": exc.stream_id, "expected": exc.expected, "actual": exc.actual}],
    )


def _from_idempotency(_exc: store_errors.IdempotencyConflictError) -> errors.ServiceError:
    return errors.ConflictError(
        "this Idempotency-Key was already used for a different request",
        code="idempotency_key_reused",
    )


def _from_rejected(exc: store_errors.EventRejectedError) -> errors.ServiceError:
    """An event the log would not store or could not read back: the request's fault, alone."""
    return errors.ValidationFailedError(
        "the request would record an event the log cannot store and read back",
        details=[{"field": exc.field or "", "message": exc.reason}],
    )


def _from_behind(exc: runner.ProjectionsBehindError) -> errors.ServiceError:
    """Deciding or waiting on read models that cannot follow the log: try again later."""
    if exc.failure is None:
        return errors.UnavailableError(
            "the read models are behind the log; try again", code="projections_behind"
        )
    return errors.UnavailableError(
        "the read models are stopped before an event they cannot read; see GET /healthz",
        code="projections_stopped",
        details=[projections_stopped(exc.position, exc.head, exc.failure).wire()],
    )


def projections_stopped(
    position: int, head: int, failure: runner.FoldFailure
) -> schemas.ProjectionsStopped:
    """The projections' state as /healthz and 503 answers show it while they are stopped."""
    return schemas.ProjectionsStopped(
        position=position,
        head=head,
        error=schemas.FoldFailure(
            position=failure.position, type=failure.event_type, message=failure.error
        ),
    )


def _from_validation(exc: ValidationError) -> errors.ServiceError:
    """A request that does not fit its model is the caller's 422; an answer that does not fit
    its model is our bug: a 500, and the model named in the log (never the values)."""
    if exc.title in answer_models():
        logger.error("an answer does not fit its model %s", exc.title)
        return errors.ServiceError("internal error")
    return validation_error(exc)


def answer_models() -> set[str]:
    """The names of every answer model (the titles pydantic gives their errors)."""
    found: set[str] = set()
    pending: list[type[BaseModel]] = [
        answers.Answer,
        tool_schemas.LegacyAnswer,
        schemas.CredentialStatuses,
    ]
    while pending:
        model = pending.pop()
        found.add(model.__name__)
        pending.extend(model.__subclasses__())
    return found


def _from_unavailable(_exc: store_errors.StoreUnavailableError) -> errors.ServiceError:
    return errors.UnavailableError("the event store is unavailable", code="store_unavailable")


# Looked up along the exception's MRO, most specific first.
TRANSLATIONS: dict[type[BaseException], Callable[[Any], errors.ServiceError]] = {
    errors.ServiceError: lambda exc: exc,
    web.HTTPException: _from_http,
    ValidationError: _from_validation,
    store_errors.VersionConflictError: _from_conflict,
    store_errors.IdempotencyConflictError: _from_idempotency,
    store_errors.StoreUnavailableError: _from_unavailable,
    store_errors.EventRejectedError: _from_rejected,
    runner.ProjectionsBehindError: _from_behind,
}


def translate(exc: BaseException) -> errors.ServiceError | None:
    for cls in type(exc).__mro__:
        if cls in TRANSLATIONS:
            return TRANSLATIONS[cls](exc)
    return None


def error_response(error: errors.ServiceError) -> web.Response:
    body = schemas.ErrorAnswer(
        error=schemas.ErrorBody(code=error.code, message=error.message, details=error.details)
    )
    return web.json_response(body.wire(), status=error.status)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(_from_http(exc))
        if "Allow" in exc.headers:  # a 405 must say which methods the route has
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:  # noqa: BLE001 - the one place that turns anything into an answer
        error = translate(exc)
        if error is None:
            logger.exception("unhandled error in %s %s", request.method, request.path)
            error = errors.ServiceError("internal error")
        return error_response(error)


def auth_middleware(
    role_needed: Callable[[web.Request], str | None],
    token_table: Callable[[web.Request], token_store.TokenTable],
) -> Callable[..., Any]:
    """Every route but the public ones needs `Authorization: Bearer <token>` of a token whose
    role may call it: 401 without one, 403 `forbidden` naming the role needed."""

    @web.middleware
    async def authenticate(
        request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        needed = role_needed(request)
        if needed is not None:
            token = await _identify(request, token_table(request))
            if not tokens.allows(token.role, needed):
                raise errors.ForbiddenError(
                    f"this needs a token of role {needed} or above; {token.name!r} is {token.role}",
                    details=[{"needed": needed, "role": token.role}],
                )
            request[actor_key] = token.actor
            request[role_key] = token.role
        response: web.StreamResponse = await handler(request)
        return response

    return authenticate


async def _identify(request: web.Request, table: token_store.TokenTable) -> tokens.Token:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    token = None
    if scheme.lower() == "bearer" and given:
        token = await table.identify(tokens.digest(given))
    if token is None:
        raise errors.UnauthorizedError("a valid bearer token is required")
    return token
