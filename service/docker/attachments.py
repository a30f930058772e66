"""Attaching a running container (DTMA's own, when it runs in one) to networks and detaching
it: the adapter's `attachments`. Each is idempotent, since a pass may repeat what the last one
did, or race with another."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

import aiodocker

from service.docker.errors import (
    DockerConflictError,
    DockerNotFoundError,
    DockerOperationError,
    translated,
)


class Attachments:
    def __init__(self, client: Callable[[], aiodocker.Docker]) -> None:
        self._client = client

    async def connect(self, network: str, container_id: str) -> None:
        """Attach the container to `network`; already attached is fine. An absent network or
        container is a `DockerNotFoundError`."""
        action = f"attach container {container_id[:12]} to network {network}"
        try:
            with translated(action, missing=f"network {network} or its container"):
                found = await self._client().networks.get(network)
                await found.connect({"Container": container_id})
        except DockerConflictError as exc:
            if "already exists" not in exc.message:  # Docker: "endpoint with name ..."
                raise

    async def disconnect(self, network: str, container_id: str) -> None:
        """Detach the container from `network`; not attached, or either absent, is fine."""
        action = f"detach container {container_id[:12]} from network {network}"
        try:
            with suppress(DockerNotFoundError), translated(action):
                found = await self._client().networks.get(network)
                await found.disconnect({"Container": container_id})
        except DockerOperationError as exc:
            if "is not connected" not in exc.message:  # Docker answers that with a 500
                raise
