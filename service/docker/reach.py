"""How DTMA reaches the replicas it runs: at host-loopback ports, or at their addresses on each
group's network, its own container attached there. `detect` decides from the setting and from
what the engine says of the container this process may run in."""

from __future__ import annotations

import logging
import re
import socket
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from service.docker.errors import DockerNotFoundError
from service.docker.objects import ContainerInfo

if TYPE_CHECKING:
    from service.docker.adapter import DockerAdapter

logger = logging.getLogger(__name__)

# Docker bind-mounts these three files of a container's own directory into it, whatever the
# cgroup version or the hostname: the surest trace of the container's id from inside.
CONTAINER_FILE = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf) ")
CGROUP = re.compile(r"docker[/-]([0-9a-f]{64})")  # cgroup v1, or v2 with a private namespace off
HOSTNAME_ID = re.compile(r"[0-9a-f]{12,64}")  # Docker's default hostname: the id's first 12


@dataclass(frozen=True, slots=True)
class Reach:
    """`network`: replicas are reached at their address on their group's network, never at a
    published port; `container_id` is DTMA's own container, to attach to each group's network
    (None when DTMA runs on the host, which reaches bridge networks as they are)."""

    mode: Literal["host", "network"]
    container_id: str | None = None

    @property
    def network(self) -> bool:
        return self.mode == "network"


HOST = Reach("host")


def candidates(mountinfo: str, cgroup: str, hostname: str) -> list[str]:
    """The ids (or id prefixes) this process's container may have, surest first. Pure."""
    found = CONTAINER_FILE.findall(mountinfo) + CGROUP.findall(cgroup)
    if HOSTNAME_ID.fullmatch(hostname):
        found.append(hostname)
    return list(dict.fromkeys(found))


async def own_container(
    docker: DockerAdapter, proc: Path = Path("/proc"), hostname: str | None = None
) -> ContainerInfo | None:
    """The running container of the engine `docker` drives that this process runs in, if any.

    A candidate counts only if the engine holds a running container whose id starts with it:
    `/.dockerenv` is not enough (a sandbox may carry one and yet run the engine itself), nor a
    hostname that merely looks like an id, nor an engine elsewhere that has never heard of it.
    """
    found = candidates(
        _read(proc / "self" / "mountinfo"),
        _read(proc / "self" / "cgroup"),
        hostname if hostname is not None else socket.gethostname(),
    )
    for candidate in found:
        with suppress(DockerNotFoundError):
            info = await docker.inspect_container(candidate)
            if info.running and info.id.startswith(candidate):
                return info
    return None


async def detect(
    docker: DockerAdapter, wanted: str, proc: Path = Path("/proc"), hostname: str | None = None
) -> Reach:
    """The reach for the setting `wanted` (auto, network or host)."""
    if wanted == "host":
        return HOST
    own = await own_container(docker, proc, hostname)
    if own is not None and own.network_mode != "host":  # host networking: loopback works
        reach = Reach("network", own.id)
    elif wanted == "network":
        reach = Reach("network")
    else:
        reach = HOST
    logger.info(
        "reaching replicas over %s (DTMA_REACH=%s, own container %s)",
        "their group networks" if reach.network else "host-loopback ports",
        wanted,
        own.id[:12] if own else "none",
    )
    return reach


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
