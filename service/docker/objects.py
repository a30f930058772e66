"""What the Docker adapter takes and gives: plain values, and their mapping to Docker's JSON.

Nothing here talks to the engine; `service.docker` does, and re-exports these names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service import container_policy

MANAGED_LABEL = "dtma.managed"
MANAGED_LABELS: Mapping[str, str] = {MANAGED_LABEL: "true"}
DEFAULT_PIDS_LIMIT = 512
LOOPBACK = "127.0.0.1"
MIB = 1024 * 1024
NANO = 1_000_000_000
NEVER = "0001-01-01T00:00:00Z"  # Docker's zero time: not started, or not finished yet
# Docker's json-file driver, rotated: a chatty server keeps at most 3 x 10 MB of log on disk
# whatever the daemon's default driver (json-file, which never rotates unless told to).
LOG_MAX_SIZE = "10m"
LOG_MAX_FILE = "3"
SECRETS_DIR = "/run/secrets"
# Sticky and world-writable like /tmp: whatever user the container runs as (the image may set
# it) writes its own files, 0400, and no other user can replace them. 1 MiB of the container's
# memory: a rotation holds the old and the new file at once.
SECRETS_TMPFS_OPTIONS = "rw,noexec,nosuid,nodev,size=1m,mode=1777"


@dataclass(frozen=True)
class ContainerSpec:
    """A container to create. `dtma.managed=true` is always added to `labels`.

    `command` replaces the image's CMD (its ENTRYPOINT stays). `container_port`/tcp is published
    on the host's loopback at a port Docker picks, unless `host_ports` (pairs of container port
    and host port) fixes one; those are published on the loopback too, never on every interface.
    `aliases` name the container on `network`.
    Memory is a hard limit in MiB with no swap beyond it; `cpus` may be fractional.
    `user` replaces the image's USER ("1000", "1000:1000", a name). `secrets_tmpfs` mounts a
    small tmpfs at /run/secrets, for images with a shell only: Docker's archive API, the way
    into images without one, cannot reach a tmpfs (see `DockerAdapter.write_secret_file`).
    `open_stdin` keeps the container's stdin open, without a TTY, for `attach.StdioAttachment`.
    """

    name: str
    image: str
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    command: Sequence[str] | None = None
    network: str | None = None
    aliases: Sequence[str] = ()
    container_port: int | None = None
    memory_mb: int | None = None
    cpus: float | None = None
    pids: int = DEFAULT_PIDS_LIMIT
    cap_add: Sequence[str] = ()
    host_ports: Sequence[tuple[int, int]] = ()
    user: str | None = None
    secrets_tmpfs: bool = False
    open_stdin: bool = False


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the engine reports it (from an inspect).

    `state` is Docker's status: created, running, paused, restarting, removing, exited, dead.
    `exit_code` is None until the container has exited. `host_port` is the loopback port the
    container's published port is reachable at, while it runs; `ip_address` its address on its
    network (the host reaches it there too, also on an internal network, which publishes no port).
    `networks` maps each network it is attached to to its address there; `network_mode` is
    Docker's (a network's name, `bridge`, `host`, `container:<id>`, `none`).
    """

    id: str
    name: str
    image: str
    labels: Mapping[str, str]
    state: str
    running: bool
    exit_code: int | None
    oom_killed: bool
    started_at: datetime | None
    finished_at: datetime | None
    restart_count: int
    host_port: int | None
    ip_address: str | None
    networks: Mapping[str, str] = field(default_factory=dict)
    network_mode: str = ""

    @property
    def managed(self) -> bool:
        return is_managed(self.labels)


def is_managed(labels: Mapping[str, str] | None) -> bool:
    return (labels or {}).get(MANAGED_LABEL) == "true"


def managed(labels: Mapping[str, str]) -> dict[str, str]:
    """`labels` with `dtma.managed=true`, which no caller can override."""
    return {**labels, **MANAGED_LABELS}


def hardened_host_config(*, pids_limit: int = DEFAULT_PIDS_LIMIT) -> dict[str, Any]:
    """The HostConfig every container starts from: no privileges to gain, no restarts, a log
    that rotates."""
    return {
        "SecurityOpt": ["no-new-privileges"],
        "CapDrop": ["ALL"],
        "PidsLimit": pids_limit,
        "RestartPolicy": {"Name": "no"},
        "LogConfig": {
            "Type": "json-file",
            "Config": {"max-size": LOG_MAX_SIZE, "max-file": LOG_MAX_FILE},
        },
    }


def container_config(spec: ContainerSpec) -> dict[str, Any]:
    """The body of `POST /containers/create` for `spec`."""
    config: dict[str, Any] = {
        "Image": spec.image,
        "Labels": managed(spec.labels),
        "Env": [f"{key}={value}" for key, value in spec.env.items()],
        "HostConfig": _host_config(spec),
    }
    if spec.command is not None:
        config["Cmd"] = list(spec.command)
    if spec.user is not None:
        config["User"] = spec.user
    if spec.open_stdin:
        # Without a TTY stdout and stderr stay apart; StdinOnce false: a detach (a restart of
        # DTMA) leaves stdin open, so the server lives on until it is attached again.
        config.update(OpenStdin=True, StdinOnce=False, Tty=False)
    if bindings := _port_bindings(spec):
        config["ExposedPorts"] = {port: {} for port in bindings}
    if spec.network is not None:
        endpoint = {"Aliases": list(spec.aliases)}
        config["NetworkingConfig"] = {"EndpointsConfig": {spec.network: endpoint}}
    return config


def _host_config(spec: ContainerSpec) -> dict[str, Any]:
    host_config = hardened_host_config(pids_limit=spec.pids)
    if granted := [c for c in spec.cap_add if not container_policy.never_granted(c)]:
        host_config["CapAdd"] = granted  # whatever the caller checked: never ALL or SYS_*
    if spec.memory_mb is not None:
        host_config["Memory"] = host_config["MemorySwap"] = spec.memory_mb * MIB
    if spec.cpus is not None:
        host_config["NanoCpus"] = round(spec.cpus * NANO)
    if bindings := _port_bindings(spec):
        host_config["PortBindings"] = bindings
    if spec.network is not None:
        host_config["NetworkMode"] = spec.network
    if spec.secrets_tmpfs:
        host_config["Tmpfs"] = {SECRETS_DIR: SECRETS_TMPFS_OPTIONS}
    return host_config


def _port_bindings(spec: ContainerSpec) -> dict[str, list[dict[str, str]]]:
    """Loopback bindings: each of `host_ports`, and `container_port` at a free port ("": Docker's
    choice) unless it has a fixed one."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for container_port, host_port in spec.host_ports:
        binding = {"HostIp": LOOPBACK, "HostPort": str(host_port)}
        bindings.setdefault(_port_key(container_port), []).append(binding)
    if spec.container_port is not None:
        free = {"HostIp": LOOPBACK, "HostPort": ""}
        bindings.setdefault(_port_key(spec.container_port), [free])
    return bindings


def _port_key(port: int) -> str:
    return f"{port}/tcp"


def container_info(details: Mapping[str, Any]) -> ContainerInfo:
    """A `ContainerInfo` from the answer of `GET /containers/{id}/json`."""
    state = details.get("State") or {}
    config = details.get("Config") or {}
    running = bool(state.get("Running"))
    finished_at = _timestamp(state.get("FinishedAt"))
    exited = not running and finished_at is not None
    return ContainerInfo(
        id=str(details["Id"]),
        name=str(details.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        labels=dict(config.get("Labels") or {}),
        state=str(state.get("Status", "")),
        running=running,
        exit_code=int(state.get("ExitCode", 0)) if exited else None,
        oom_killed=bool(state.get("OOMKilled")),
        started_at=_timestamp(state.get("StartedAt")),
        finished_at=finished_at,
        restart_count=int(details.get("RestartCount") or 0),
        host_port=published_port(details),
        ip_address=_ip_address(details),
        networks=_addresses(details),
        network_mode=str((details.get("HostConfig") or {}).get("NetworkMode") or ""),
    )


def published_port(details: Mapping[str, Any]) -> int | None:
    """The loopback port of the first port the container asked to publish, while it is bound."""
    wanted = (details.get("HostConfig") or {}).get("PortBindings") or {}
    bound = (details.get("NetworkSettings") or {}).get("Ports") or {}
    for port in wanted:
        for binding in bound.get(port) or []:
            if binding.get("HostIp") == LOOPBACK and binding.get("HostPort"):
                return int(binding["HostPort"])
    return None


def _ip_address(details: Mapping[str, Any]) -> str | None:
    """The address on the container's own network (its NetworkMode), else on any network."""
    networks: Mapping[str, Any] = (details.get("NetworkSettings") or {}).get("Networks") or {}
    mode = (details.get("HostConfig") or {}).get("NetworkMode")
    ordered = [networks[mode]] if isinstance(mode, str) and mode in networks else []
    for endpoint in [*ordered, *networks.values()]:
        if address := (endpoint or {}).get("IPAddress"):
            return str(address)
    return None


def _addresses(details: Mapping[str, Any]) -> dict[str, str]:
    """Each network the container is attached to, with its address there ("" before it runs)."""
    networks: Mapping[str, Any] = (details.get("NetworkSettings") or {}).get("Networks") or {}
    return {name: str((e or {}).get("IPAddress") or "") for name, e in networks.items()}


def _timestamp(value: object) -> datetime | None:
    """Docker's RFC 3339 time (nanoseconds are cut to microseconds); None for its zero time."""
    if not isinstance(value, str) or not value or value == NEVER:
        return None
    return datetime.fromisoformat(value)
