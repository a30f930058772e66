"""DTMA's own container on the group networks, in network reach: attached to each group's
network (internal ones too) so that it reaches replicas at their addresses there, detached
before a network is removed (Docker refuses to remove a network still in use)."""

from __future__ import annotations

from collections.abc import Iterable

from service.docker import reach
from service.docker.adapter import DockerAdapter


class OwnNetworks:
    def __init__(self, docker: DockerAdapter, wanted: str = "host") -> None:
        self._docker = docker
        self._wanted = wanted  # the DTMA_REACH setting
        self._reach: reach.Reach | None = None

    async def reach(self) -> reach.Reach:
        """Detected on first use and kept: whether DTMA runs in a container does not change.
        An engine that cannot be reached raises, and the next pass asks again."""
        if self._reach is None:
            self._reach = await reach.detect(self._docker, self._wanted)
        return self._reach

    async def attach(self, networks: Iterable[str]) -> None:
        """Attach DTMA's container to each of `networks` it is not on yet. One inspect a pass:
        level-triggered, so a detach from outside is undone by the next pass."""
        own = (await self.reach()).container_id
        if own is None:
            return
        attached = (await self._docker.inspect_container(own)).networks
        for name in networks:
            if name not in attached:
                await self._docker.attachments.connect(name, own)

    async def detach(self, network: str) -> None:
        own = (await self.reach()).container_id
        if own is not None:
            await self._docker.attachments.disconnect(network, own)
