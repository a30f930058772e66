"""The Docker adapter's errors: every aiodocker or connection error becomes one of these service
errors in `translated`, and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiodocker
import aiohttp

from service import errors


class DockerUnavailableError(errors.UnavailableError):
    code = "docker_unavailable"


class DockerNotFoundError(errors.NotFoundError):
    code = "docker_not_found"


class DockerConflictError(errors.ConflictError):
    code = "docker_conflict"


class DockerOperationError(errors.ServiceError):
    status = 502
    code = "docker_error"


class ImageRefusedError(errors.ValidationFailedError):
    """Docker will not make a container of the image (no command, another platform): the
    request's image is at fault, not the engine."""

    code = "image_refused"


class ImagePullError(errors.NotFoundError):
    """An image could not be pulled: unknown, refused by the registry, or the registry down.
    The message is the engine's, which carries no credential."""

    code = "image_pull_failed"


@contextmanager
def translated(action: str, *, missing: str | None = None, refused: bool = False) -> Iterator[None]:
    """Turn aiodocker's and aiohttp's errors during `action` into service errors.

    `missing` names what a 404 means ("image x:1"); with `refused`, a 400 is the image's fault
    (`ImageRefusedError`).
    """
    try:
        yield
    except aiodocker.DockerError as exc:
        if refused and exc.status == 400 and "invalid reference format" not in exc.message:
            raise ImageRefusedError(f"cannot {action}: {exc.message}") from exc
        raise service_error(exc, action, missing) from exc
    except (
        aiohttp.ClientConnectionError,
        aiohttp.ClientPayloadError,  # a stream cut short
        FileNotFoundError,
        ConnectionError,
    ) as exc:
        raise DockerUnavailableError(f"cannot {action}: the Docker engine is unreachable") from exc


def service_error(
    exc: aiodocker.DockerError, action: str, missing: str | None
) -> errors.ServiceError:
    if exc.status == 900:
        return DockerUnavailableError(f"cannot {action}: the Docker engine is unreachable")
    # Docker answers a name no image can have ("I4qI", "a:b:c") with 400 "no such image: ...:
    # invalid reference format": as absent as any other missing image.
    if exc.status == 404 or (exc.status == 400 and "invalid reference format" in exc.message):
        return DockerNotFoundError(
            f"{missing} not found" if missing else f"cannot {action}: {exc.message}"
        )
    if exc.status in (403, 409):  # 403: not in this state (a network in use, a built-in one)
        return DockerConflictError(f"cannot {action}: {exc.message}")
    return DockerOperationError(f"cannot {action}: {exc.message}")
