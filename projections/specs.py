"""Value objects carried by events: what a group and its MCP servers should be, and the sealed
secrets of a credential version.

Stored as the events' data (snake_case); `service.handling.commands` maps the camelCase wire
form here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

DEFAULT_PIDS = 512

# As Kubernetes spells them: pull when absent, before every new pin, or never.
PullPolicy = Literal["IfNotPresent", "Always", "Never"]


class Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limits(Value):
    memory_mb: int | None = None
    cpus: float | None = None
    pids: int | None = None

    def over(self, base: Limits | None) -> Limits:
        """These limits, falling back field by field to `base` (a server's over its group's)."""
        if base is None:
            return self
        return Limits(
            memory_mb=self.memory_mb if self.memory_mb is not None else base.memory_mb,
            cpus=self.cpus if self.cpus is not None else base.cpus,
            pids=self.pids if self.pids is not None else base.pids,
        )


class HealthCheck(Value):
    type: Literal["mcp", "http", "tcp", "none"] = "mcp"
    url: str | None = None
    interval_ms: int = 5_000
    timeout_ms: int = 2_000
    failure_threshold: int = 3
    recovery_threshold: int = 2
    start_period_ms: int = 30_000
    circuit_breaker_enabled: bool = True


class CredentialRequirement(Value):
    name: str
    mode: Literal["env", "file"]


class InitContainer(Value):
    image: str
    command: tuple[str, ...] | None = None
    image_pull_policy: PullPolicy = "IfNotPresent"


class LegacyTool(Value):
    """A tool deployed through the legacy `/tools` routes, as the backend names it."""

    instance_name: str  # the backend's instanceNameOnToolbox, as given (spaces and all)
    account_tool_instance_id: str


class ServerSpec(Value):
    """One MCP server as declared: image, how to reach it, how many, what it needs."""

    id: str
    image: str
    image_pull_policy: PullPolicy = "IfNotPresent"
    command: tuple[str, ...] | None = None
    env: dict[str, str] = {}
    port: int = 8000
    transport: Literal["streamable-http", "stdio"] = "streamable-http"
    path: str = "/mcp"
    replicas: int = 1
    depends_on: tuple[str, ...] = ()
    limits: Limits | None = None
    health_check: HealthCheck = HealthCheck()
    credential_requirements: tuple[CredentialRequirement, ...] = ()
    init_containers: tuple[InitContainer, ...] = ()
    cap_add: tuple[str, ...] = ()
    # (container port, host port) published at that fixed host port: legacy tools only.
    host_ports: tuple[tuple[int, int], ...] = ()
    legacy: LegacyTool | None = None
    reload_signal: str | None = None  # sent to running replicas after a new configuration
    # `port` on the host's loopback: None publishes it in host reach only, where DTMA reaches
    # replicas there (service/docker/reach.py); true or false decides for either reach.
    publish_port: bool | None = None

    @property
    def labels(self) -> dict[str, str]:
        """Labels its containers carry beyond DTMA's own: a legacy tool's original name."""
        if self.legacy is None:
            return {}
        return {
            "dtma.tool.name": self.legacy.instance_name,
            "dtma.tool.account-tool-instance-id": self.legacy.account_tool_instance_id,
        }


class SealedSecret(BaseModel):
    """One secret of a credential version, encrypted with that version's data key. Only the
    ciphertext is ever in the log; the key lives (wrapped) in the store's key table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    mode: Literal["env", "file"]
    kind: Literal["api_key", "certificate", "oauth_access_token"]
    ciphertext: str
    expires_at: str | None = None  # an OAuth access token's expiry


class OAuthGrant(BaseModel):
    """How to obtain a provider's access tokens; the client secret and refresh token are
    ciphertext under the version's data key, like every secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    client_id: str
    scopes: tuple[str, ...] = ()
    token_endpoint: str
    client_secret: str
    refresh_token: str | None = None
    mode: Literal["env", "file"] = "file"
