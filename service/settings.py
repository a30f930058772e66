"""Settings: flags, then environment, then /etc/dtma.conf, then defaults. The only reader of
os.environ is the CLI, which hands the environment to `load_settings`. Tokens have no flag:
argv shows in `ps`."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from service import container_policy

N = TypeVar("N", int, float)
DEFAULT_DATABASE_URL = "sqlite:///./dtma.db"
CONF_FILE = Path("/etc/dtma.conf")
ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # as config templates name them


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    auth_token: str | None = None  # an admin token (service/tokens.py)
    tokens_file: str | None = None  # NAME ROLE TOKEN lines, readable by its owner only
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 30000
    key_file: str = "./dtma.key"
    docker_host: str | None = None
    backend_url: str | None = None
    backend_token: str | None = None
    snapshot_every: int = 1000
    checkpoint_every: int = 1000  # events between signed checkpoints of the hash chain
    log_level: str = "INFO"
    log_format: str = "json"  # or "text", for a person at a terminal
    # A log line per HTTP request: off by default (GET /metrics counts requests), since a line
    # per request costs a busy service a fifth of its request rate.
    access_log: bool = False
    # Labels stamped on every container and network this instance creates, and required on
    # everything it reconciles: lets several instances (or test runs) share one engine.
    owner_labels: Mapping[str, str] = field(default_factory=dict)
    reconcile_interval_s: float = 10.0
    heartbeat_interval_s: float = 60.0
    # Which of a config template's per-environment overrides apply (none when unset).
    environment: str | None = None
    # What one request may send: over these it is refused (413 for the body, else 422).
    max_body_bytes: int = 1024 * 1024
    max_json_depth: int = 32
    max_json_string: int = 262_144
    max_json_array: int = 10_000
    # Container safety (see docs/operations.md, "Security"): capabilities a server may add
    # beyond the built-in allow-list, limits when neither a server nor its group sets any,
    # the host-wide cap on managed containers.
    allowed_capabilities: tuple[str, ...] = ()
    default_memory_mb: int = container_policy.DEFAULT_MEMORY_MB
    default_cpus: float = container_policy.DEFAULT_CPUS
    max_containers: int = container_policy.DEFAULT_MAX_CONTAINERS
    # Open event streams (SSE) one token may hold at once; past it 429.
    max_streams_per_token: int = 8
    # How long a connection may take to send a whole request head, and may then stay idle.
    header_timeout_s: float = 15.0
    # Hosts (names, addresses or CIDR blocks) outbound requests may reach although they are
    # loopback, link-local or private, or over plain http: service/outbound.py.
    outbound_allow: tuple[str, ...] = ()
    # How DTMA reaches replicas: "host" (loopback ports), "network" (attached to each group's
    # network, at the replica's address there) or "auto" (network when it runs in a container).
    reach: str = "auto"

    def policy(self) -> container_policy.ContainerPolicy:
        return container_policy.ContainerPolicy(
            allowed_capabilities=container_policy.DEFAULT_CAPABILITIES
            | frozenset(self.allowed_capabilities),
            default_memory_mb=self.default_memory_mb,
            default_cpus=self.default_cpus,
            max_containers=self.max_containers,
        )


# flag name -> environment variables, first found wins
SOURCES: dict[str, tuple[str, ...]] = {
    "auth_token": ("DTMA_AUTH_TOKEN", "BACKEND_TO_DTMA_API_KEY"),
    "tokens_file": ("DTMA_TOKENS_FILE",),
    "database_url": ("DTMA_DATABASE_URL",),
    "host": ("DTMA_HOST",),
    "port": ("DTMA_PORT", "PORT"),
    "key_file": ("DTMA_KEY_FILE",),
    "docker_host": ("DOCKER_HOST",),
    "backend_url": ("DTMA_BACKEND_URL", "AGENTOPIA_API_BASE_URL"),
    "backend_token": ("DTMA_BACKEND_TOKEN", "DTMA_BEARER_TOKEN"),
    "snapshot_every": ("DTMA_SNAPSHOT_EVERY",),
    "checkpoint_every": ("DTMA_CHECKPOINT_EVERY",),
    "log_level": ("DTMA_LOG_LEVEL",),
    "log_format": ("DTMA_LOG_FORMAT",),
    "access_log": ("DTMA_ACCESS_LOG",),
    "owner_labels": ("DTMA_OWNER_LABELS",),
    "reconcile_interval_s": ("DTMA_RECONCILE_INTERVAL",),
    "heartbeat_interval_s": ("DTMA_HEARTBEAT_INTERVAL",),
    "environment": ("DTMA_ENVIRONMENT",),
    "max_body_bytes": ("DTMA_MAX_BODY_BYTES",),
    "max_json_depth": ("DTMA_MAX_JSON_DEPTH",),
    "max_json_string": ("DTMA_MAX_JSON_STRING",),
    "max_json_array": ("DTMA_MAX_JSON_ARRAY",),
    "allowed_capabilities": ("DTMA_ALLOWED_CAPABILITIES",),
    "default_memory_mb": ("DTMA_DEFAULT_MEMORY_MB",),
    "default_cpus": ("DTMA_DEFAULT_CPUS",),
    "max_containers": ("DTMA_MAX_CONTAINERS",),
    "max_streams_per_token": ("DTMA_MAX_STREAMS_PER_TOKEN",),
    "header_timeout_s": ("DTMA_HEADER_TIMEOUT",),
    "outbound_allow": ("DTMA_OUTBOUND_ALLOW",),
    "reach": ("DTMA_REACH",),
}
NO_FLAG = ("auth_token",)  # a secret: the environment, /etc/dtma.conf or DTMA_TOKENS_FILE only
INTEGERS = (
    "port",
    "snapshot_every",
    "checkpoint_every",
    "max_body_bytes",
    "max_json_depth",
    "max_json_string",
    "max_json_array",
    "default_memory_mb",
    "max_containers",
    "max_streams_per_token",
)
FLOATS = ("reconcile_interval_s", "heartbeat_interval_s", "default_cpus", "header_timeout_s")
CAPABILITY = re.compile(r"[A-Z][A-Z0-9_]{1,31}")
# Past this depth pydantic cannot read the log's JSON back: see service/api/json_limits.py.
MAX_JSON_DEPTH_CEILING = 128
MIN_MEMORY_MB = 6  # Docker refuses a smaller memory limit
REACHES = ("auto", "network", "host")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings flags, shared by every subcommand."""
    for name in (n for n in SOURCES if n not in NO_FLAG):
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None)


def parse_conf(text: str) -> dict[str, str]:
    """KEY=VALUE lines of /etc/dtma.conf; blank lines and # comments ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("\"'")
    return values


def load_settings(
    argv: Sequence[str], environ: Mapping[str, str], conf_text: str | None = None
) -> Settings:
    """Flags in `argv` > `environ` > the conf file's DTMA_AUTH_TOKEN > defaults. Pure."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    flags, _rest = parser.parse_known_args(list(argv))
    conf = parse_conf(conf_text or "")
    raw: dict[str, str] = {}
    for name, variables in SOURCES.items():
        value = getattr(flags, name, None)
        if value is None:
            value = next((environ[v] for v in variables if environ.get(v)), None)
        if value is None and name == "auth_token":
            value = conf.get("DTMA_AUTH_TOKEN") or None
        if value is not None:
            raw[name] = value
    return _build(raw)


def _build(raw: dict[str, str]) -> Settings:
    values: dict[str, object] = dict(raw)
    for name in INTEGERS:
        if name in raw:
            values[name] = _positive(name, raw[name], int, "an integer")
    depth = values.get("max_json_depth")
    if isinstance(depth, int) and depth > MAX_JSON_DEPTH_CEILING:
        raise SettingsError(f"max_json_depth must be at most {MAX_JSON_DEPTH_CEILING}, got {depth}")
    memory = values.get("default_memory_mb")
    if isinstance(memory, int) and memory < MIN_MEMORY_MB:
        raise SettingsError(f"default_memory_mb must be at least {MIN_MEMORY_MB}, got {memory}")
    if "database_url" in raw:
        values["database_url"] = normalize_database_url(raw["database_url"])
    if "owner_labels" in raw:
        values["owner_labels"] = parse_labels(raw["owner_labels"])
    for name in FLOATS:
        if name in raw:
            values[name] = _positive(name, raw[name], float, "a number")
    if "allowed_capabilities" in raw:
        values["allowed_capabilities"] = parse_capabilities(raw["allowed_capabilities"])
    if "environment" in raw and not ENVIRONMENT_NAME.fullmatch(raw["environment"]):
        raise SettingsError(
            "environment must be 1 to 63 of A-Z a-z 0-9 _ . - (a letter or digit first), "
            f"got {raw['environment']!r}"
        )
    if "outbound_allow" in raw:
        values["outbound_allow"] = tuple(
            filter(None, (h.strip().lower() for h in raw["outbound_allow"].split(",")))
        )
    if "access_log" in raw:
        values["access_log"] = _flag("access_log", raw["access_log"])
    if raw.get("reach", "auto") not in REACHES:
        raise SettingsError(f"reach must be auto, network or host, got {raw['reach']!r}")
    if raw.get("log_format", "json") not in ("json", "text"):
        raise SettingsError(f"log_format must be json or text, got {raw['log_format']!r}")
    return Settings(**values)  # type: ignore[arg-type]


def _flag(name: str, text: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "on": True}
    words |= {"0": False, "false": False, "no": False, "off": False}
    if text.strip().lower() not in words:
        raise SettingsError(f"{name} must be true or false, got {text!r}")
    return words[text.strip().lower()]


def _positive(name: str, text: str, parse: Callable[[str], N], noun: str) -> N:
    """`text` parsed by `parse` (int or float), refused unless it is above zero."""
    try:
        value = parse(text)
    except ValueError:
        raise SettingsError(f"{name} must be {noun}, got {text!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    return value


def parse_capabilities(text: str) -> tuple[str, ...]:
    """`NET_ADMIN,CAP_AUDIT_WRITE`: names as Docker takes them, `CAP_` optional. `ALL` and
    `SYS_*` are refused: no setting lets a request add those."""
    names = []
    for item in filter(None, (part.strip().upper() for part in text.split(","))):
        name = item.removeprefix("CAP_")
        if not CAPABILITY.fullmatch(name):
            raise SettingsError(f"allowed_capabilities: {item!r} is not a capability name")
        if container_policy.never_granted(name):
            raise SettingsError(f"allowed_capabilities: {name} can never be allowed")
        names.append(name)
    return tuple(names)


def parse_labels(text: str) -> dict[str, str]:
    """`key=value,key=value`, as DTMA_OWNER_LABELS spells them."""
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"owner labels must be key=value pairs, got {item!r}")
        labels[key.strip()] = value.strip()
    return labels


def normalize_database_url(url: str) -> str:
    """`sqlite:///path`, `postgresql://...`, or a bare file path (meaning SQLite)."""
    if "://" not in url:
        return f"sqlite:///{url}"
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise SettingsError("DTMA_DATABASE_URL is not a valid database URL") from None
    if backend not in ("sqlite", "postgresql"):
        raise SettingsError(f"DTMA_DATABASE_URL: unsupported database {backend!r}")
    return url
