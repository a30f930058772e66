"""Getting images onto this host as a pull policy says, with the registry's stored credentials
(opened in memory for the pull's header alone). What is being pulled, and how far it got, is
kept in memory only: progress is not a fact for the log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eventstore.keyring import KeyRing, KeyringError
from projections import registries, specs
from projections.runner import ProjectionRunner
from service.docker import adapter, errors, images

Started = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Pulling:
    done: int = 0
    total: int | None = None


class ImagePuller:
    def __init__(
        self, runner: ProjectionRunner, docker: adapter.DockerAdapter, ring: KeyRing | None
    ) -> None:
        self._runner = runner
        self._docker = docker
        self._ring = ring
        self._locks: dict[str, asyncio.Lock] = {}
        self.pulling: dict[str, Pulling] = {}  # reference -> its progress, while it pulls
        self._for: dict[str, str] = {}  # server id -> the reference it waits for

    def progress(self) -> dict[str, tuple[int, int | None]]:
        """Server id -> bytes done and total of the image it waits for, while that pulls."""
        return {
            server_id: (pulling.done, pulling.total)
            for server_id, reference in self._for.items()
            if (pulling := self.pulling.get(reference)) is not None
        }

    async def ensure(
        self,
        reference: str,
        policy: specs.PullPolicy,
        server_id: str | None = None,
        started: Started | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The image `reference` names, pulled if `policy` says so; and whether it was.
        While it pulls, `server_id` is reported waiting for it. `started` is awaited just
        before a pull begins (never when the image is here already); if it raises, no pull.

        Raises `errors.ImagePullError` (no image, the registry refused or is down, or absent
        under `Never`), never with a credential in its message.
        """
        if server_id is not None:
            self._for[server_id] = reference
        try:
            return await self._ensure(reference, policy, started)
        finally:
            if server_id is not None and self._for.get(server_id) == reference:
                del self._for[server_id]

    async def _ensure(
        self, reference: str, policy: specs.PullPolicy, started: Started | None
    ) -> tuple[dict[str, Any], bool]:
        async with self._locks.setdefault(reference, asyncio.Lock()):
            if policy != "Always" and (found := await self._docker.find_image(reference)):
                return found, False
            if policy == "Never":
                raise errors.ImagePullError(
                    f"image {reference} is not on this host and its imagePullPolicy is Never"
                )
            if started is not None:
                await started()
            return await self._pull(reference), True

    async def _pull(self, reference: str) -> dict[str, Any]:
        auth = await self.auth_for(reference)
        self.pulling[reference] = Pulling()

        def progress(done: int, total: int | None) -> None:
            self.pulling[reference] = Pulling(done, total)

        try:
            return await self._docker.pull_image(reference, auth, progress)
        finally:
            del self.pulling[reference]

    async def auth_for(self, reference: str) -> Mapping[str, str] | None:
        """The stored credentials of the reference's registry, opened; None without any."""
        try:
            registry = images.parse(reference).registry
        except ValueError:
            return None
        known = self._runner.state(registries.PROJECTION).registries.get(registry)
        if known is None or self._ring is None:
            return None
        try:
            password = await self._ring.decrypt(known.key_id, known.password)
        except KeyringError:  # forgotten meanwhile: pull as anyone
            return None
        return {"username": known.username, "password": password.decode()}
