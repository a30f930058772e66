"""A bridge for every running replica of a stdio server, following the projections.

A replica's new container gets a new bridge (and so new sessions); one that stopped loses its
bridge. After a restart of DTMA the running containers are attached again the same way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from projections import containers, groups
from projections.runner import ProjectionRunner
from service import errors
from service.docker.adapter import DockerAdapter
from service.stdio.bridge import StdioBridge

logger = logging.getLogger(__name__)

REATTACH_S: Final = 1.0  # a replica whose attach failed or ended is tried again after this
Replica = tuple[str, int]  # (server id, replica number)


@dataclass(eq=False)
class _Attached:
    bridge: StdioBridge
    task: asyncio.Task[None]


def running_stdio(runner: ProjectionRunner) -> dict[Replica, str]:
    """The container of every running replica of a stdio server. Pure over the read models."""
    desired = runner.state(groups.PROJECTION)
    observed = runner.state(containers.PROJECTION)
    found: dict[Replica, str] = {}
    for server_id, server in desired.servers.items():
        if server.spec.transport != "stdio":
            continue
        for instance in observed.of(server_id):
            if instance.state == "running" and instance.container_id:
                found[(server_id, instance.replica)] = instance.container_id
    return found


class Bridges:
    def __init__(self, runner: ProjectionRunner, docker: DockerAdapter) -> None:
        self._runner = runner
        self._docker = docker
        self._attached: dict[Replica, _Attached] = {}
        self._tried: dict[str, float] = {}  # container id -> when an attach last failed or ended

    def get(self, server_id: str, replica: int) -> StdioBridge | None:
        """The replica's bridge while its container runs (a lost one until it is replaced)."""
        attached = self._attached.get((server_id, replica))
        return attached.bridge if attached is not None else None

    async def run(self) -> None:
        try:
            while True:
                await self._follow()
                await self._runner.wait_for(self._runner.position + 1, within=REATTACH_S)
        finally:
            await asyncio.gather(*(self._detach(key) for key in list(self._attached)))

    async def _follow(self) -> None:
        wanted = running_stdio(self._runner)
        for key in set(self._attached) - set(wanted):
            await self._detach(key)
        for key, container_id in wanted.items():
            attached = self._attached.get(key)
            if attached is not None and attached.bridge.container_id == container_id:
                if not attached.task.done():
                    continue
                self._tried.setdefault(container_id, _now())  # it ended: try again in a while
            if self._due(container_id):
                await self._detach(key)
                await self._attach(key, container_id)

    def _due(self, container_id: str) -> bool:
        tried = self._tried.get(container_id)
        return tried is None or _now() - tried >= REATTACH_S

    async def _attach(self, key: Replica, container_id: str) -> None:
        try:
            attachment = await self._docker.attach_stdio(container_id)
        except errors.ServiceError as exc:
            logger.warning("cannot attach to %s replica %d: %s", key[0], key[1], exc.message)
            self._tried[container_id] = _now()
            return
        self._tried.pop(container_id, None)
        bridge = StdioBridge(attachment)
        task = asyncio.create_task(bridge.run(), name=f"dtma-stdio-{container_id[:12]}")
        self._attached[key] = _Attached(bridge, task)
        logger.info("attached to %s replica %d (%s)", key[0], key[1], container_id[:12])

    async def _detach(self, key: Replica) -> None:
        attached = self._attached.pop(key, None)
        if attached is None:
            return
        attached.task.cancel()
        await asyncio.gather(attached.task, return_exceptions=True)
        self._tried = {c: t for c, t in self._tried.items() if c != attached.bridge.container_id}


def _now() -> float:
    return asyncio.get_running_loop().time()
