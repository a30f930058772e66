"""The answer models that code below `service.api` must build: command handlers store their
answer as the idempotency result, and the status, breaker and audit answers are also rendered
by features and the CLI, which may not import the API. `service.api.schemas` lists them all."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Circuit = Literal["closed", "open", "half_open"]
ServerHealth = Literal["healthy", "degraded", "unhealthy", "unknown"]
Lifecycle = Literal["pending", "starting", "running", "degraded", "failed", "stopped"]
ContainerState = Literal["pulling", "created", "running", "exited", "failed"]
ReplicaVerdict = Literal["healthy", "unhealthy", "starting"]


class Answer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", validate_by_name=True)

    def wire(self) -> dict[str, Any]:
        """The JSON object sent: camelCase, and a field given no value is left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class InstanceStatus(Answer):
    replica: int
    container_id: str | None
    container_name: str | None
    state: ContainerState
    health: ReplicaVerdict
    restart_count: int
    started_at: str | None
    exit_code: int | None
    oom_killed: bool
    reason: str | None
    pull_bytes_done: int | None = Field(
        None, description="while `pulling`: bytes of the image's layers fetched so far"
    )
    pull_bytes_total: int | None = Field(
        None, description="while `pulling`: their size, once the registry has said it"
    )


class McpServerStatus(Answer):
    id: str
    group_id: str
    image: str
    image_digest: str | None = Field(
        description="the digest pinned for the server's last declaration: what its replicas run"
    )
    desired_replicas: int
    running_replicas: int
    healthy_replicas: int
    status: Lifecycle
    reason: str | None = Field(description="why it failed: its image could not be pulled")
    health: ServerHealth
    circuit_state: Circuit
    endpoints: list[str]
    instances: list[InstanceStatus]


class BreakerConfig(Answer):
    mcp_server_id: str | None = Field(description="null: the default for every server")
    failure_threshold: int
    recovery_threshold: int
    open_timeout: int = Field(description="milliseconds")
    circuit_breaker_enabled: bool


# -- the auditor's answers (GET /audit/..., and `dtma audit ...` prints the same) --------------


class CheckpointsVerdict(Answer):
    checked: int = Field(description="signed checkpoints found")
    last_verified_position: int = Field(
        description="the highest checkpoint below every failure: the log up to it is as signed"
    )
    key_ids: list[str] = Field(description="the keys the signatures were checked under")
    keys_from: Literal["service", "argument", "checkpoints"]
    first_bad_checkpoint: int | None = Field(None, description="present only when one fails")
    problem: str | None = Field(None, description="why it fails")


class KnownHeadVerdict(Answer):
    position: int
    head_hash: str
    ok: bool
    problem: str | None = None


class ChainReport(Answer):
    ok: bool = Field(description="the chain, every checkpoint and every known head hold")
    checked: int
    head_position: int
    head_hash: str
    first_bad_position: int | None = Field(None, description="present only when not ok")
    checkpoints: CheckpointsVerdict
    known_heads: list[KnownHeadVerdict] | None = None


class AuditPublicKey(Answer):
    public_key: str = Field(description="base64 of the 32-byte Ed25519 public key")
    public_key_hex: str
    key_id: str = Field(description="the first 16 hex digits of the key's SHA-256")
    algorithm: Literal["Ed25519"]
