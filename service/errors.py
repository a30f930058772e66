"""The service's refusals: one class per HTTP answer, rendered by the error middleware.

Knows nothing of aiohttp; `status` is the HTTP status the middleware gives each class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ServiceError(Exception):
    """A refusal with a stable snake_case `code`, a message for a person and details."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = list(details)


class MalformedRequestError(ServiceError):
    status = 400
    code = "malformed_request"


class UnauthorizedError(ServiceError):
    status = 401
    code = "unauthorized"


class ForbiddenError(ServiceError):
    status = 403
    code = "forbidden"


class NotFoundError(ServiceError):
    status = 404
    code = "not_found"


class ConflictError(ServiceError):
    status = 409
    code = "conflict"


class ValidationFailedError(ServiceError):
    status = 422
    code = "validation_failed"


class TooManyRequestsError(ServiceError):
    status = 429
    code = "too_many_requests"


class UnavailableError(ServiceError):
    status = 503
    code = "unavailable"


class TimedOutError(ServiceError):
    status = 504
    code = "timeout"
