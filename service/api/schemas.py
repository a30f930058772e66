"""The answers' shapes, as pydantic models: the OpenAPI document's response schemas.

The routes build their answers as dicts; these models describe them (camelCase on the wire,
no field beyond these), and the schemathesis test holds the answers to them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.alias_generators import to_camel

Circuit = Literal["closed", "open", "half_open"]
ServerHealth = Literal["healthy", "degraded", "unhealthy", "unknown"]
Lifecycle = Literal["pending", "starting", "running", "degraded", "failed", "stopped"]
ContainerState = Literal["pulling", "created", "running", "exited", "failed"]


class Answer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", validate_by_name=True)


class ErrorBody(Answer):
    code: str = Field(description="stable, snake_case")
    message: str = Field(description="for a person; never a secret or a stack trace")
    details: list[dict[str, Any]] = Field(description="for 422, one entry per bad field")


class ErrorAnswer(Answer):
    """Every refusal of a route outside the legacy ones."""

    error: ErrorBody


class Accepted(Answer):
    """A command's answer: the global position of the last event it appended."""

    position: int


# -- MCP servers and groups ------------------------------------------------------------------


class InstanceStatus(Answer):
    replica: int
    container_id: str | None
    container_name: str | None
    state: ContainerState
    health: Literal["healthy", "unhealthy", "starting"]
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
        description="the digest pinned for the server's current generation: what its replicas run"
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


class McpServerRead(McpServerStatus):
    position: int


class McpServerList(Answer):
    position: int
    mcp_servers: list[McpServerStatus]


class DeployAccepted(Answer):
    group_id: str
    mcp_servers: list[str] = Field(description="the ids of the servers deployed")
    position: int


class DeploySettled(Answer):
    """`?wait=true`: every server's status once all its replicas run and pass their probes."""

    group_id: str
    mcp_servers: list[McpServerStatus]
    position: int


class ScaleSettled(Answer):
    position: int
    mcp_server: McpServerStatus


class GroupCreated(Answer):
    id: str
    name: str
    internal: bool
    position: int


class NetworkView(Answer):
    name: str | None
    internal: bool


class LimitsView(Answer):
    memory_mb: int | None
    cpus: float | None
    pids: int | None


class GroupRead(Answer):
    id: str
    name: str
    network: NetworkView
    resource_limits: LimitsView | None
    status: Literal["empty", "starting", "running", "degraded", "failed"]
    mcp_servers: list[McpServerStatus]
    position: int


# -- health ------------------------------------------------------------------------------------


class Liveness(Answer):
    status: Literal["ok"]
    position: int
    instance: str = Field(description="this DTMA's id, kept in its log; on all it makes in Docker")


class FoldFailure(Answer):
    position: int = Field(description="the event the projections cannot fold")
    type: str
    message: str = Field(description="why: never the event's data")


class ProjectionsStopped(Answer):
    position: int = Field(description="the last position the projections folded")
    head: int = Field(description="the log's head")
    error: FoldFailure


class Degraded(Answer):
    status: Literal["degraded"]
    position: int
    instance: str
    projections: ProjectionsStopped


class BreakerConfig(Answer):
    mcp_server_id: str | None = Field(description="null: the default for every server")
    failure_threshold: int
    recovery_threshold: int
    open_timeout: int = Field(description="milliseconds")
    circuit_breaker_enabled: bool


class BreakerConfigured(Answer):
    config: BreakerConfig
    position: int


class ReplicaHealth(Answer):
    replica: int
    container_id: str | None
    state: ContainerState
    health: Literal["healthy", "unhealthy", "starting"]
    since: str | None
    last_probe_error: str | None
    exit_code: int | None
    oom_killed: bool


class Transition(Answer):
    from_: Circuit = Field(alias="from")
    to: Circuit
    cause: str
    position: int
    at: str


class ServerHealthReport(Answer):
    mcp_server_id: str
    health: ServerHealth
    circuit_state: Circuit
    consecutive_failures: int
    consecutive_successes: int
    last_check_at: str | None
    last_error: str | None
    opened_at: str | None
    next_attempt_at: str | None
    replicas: list[ReplicaHealth]
    transitions: list[Transition] = Field(description="the last 20, newest first")
    config: BreakerConfig
    position: int


class FailedContainer(Answer):
    container_id: str | None
    mcp_server_id: str
    replica: int
    exit_code: int | None
    oom_killed: bool
    failed_at: str
    reason: str | None


class RecommendedAction(Answer):
    mcp_server_id: str
    action: str
    reason: str


class ForeignContainer(Answer):
    container_id: str
    name: str
    instance: str | None = Field(description="the instance that made it; null: no label")
    group: str | None
    mcp_server_id: str | None


class ComprehensiveReport(Answer):
    overall_status: Literal["healthy", "degraded", "unhealthy"]
    mcp_server_states: list[McpServerStatus]
    failed_containers: list[FailedContainer]
    recommended_actions: list[RecommendedAction]
    foreign_containers: list[ForeignContainer] = Field(
        description="managed containers on this engine that another DTMA instance made: "
        "never touched, never recorded"
    )
    position: int


# -- credentials -------------------------------------------------------------------------------


class CredentialsAccepted(Answer):
    mcp_server_id: str
    version: int
    position: int


class CredentialsRevoked(Answer):
    versions: list[int]
    position: int


class OAuthProviderStatus(Answer):
    provider: str
    token_expires_at: str | None
    last_error: str | None


class CredentialStatus(Answer):
    """Names, never values."""

    mcp_server_id: str
    agent_id: str
    version: int
    names: list[str]
    modes: dict[str, str]
    status: Literal["pending", "injected", "failed", "expired", "retired", "revoked"]
    injected_at: str
    expires_at: str | None
    applied_to: list[int] = Field(description="the replicas that hold this version")
    last_error: str | None
    source: str
    oauth_providers: list[OAuthProviderStatus]


class CredentialStatuses(RootModel[list[CredentialStatus]]):
    pass


class PublicKey(Answer):
    public_key: str = Field(description="X25519, base64")
    algorithm: str


# -- the event log -----------------------------------------------------------------------------


class EventRecord(Answer):
    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any] = Field(description="as stored (snake_case): the text the hash covers")
    metadata: dict[str, Any]
    recorded_at: str
    hash: str


class EventPage(Answer):
    events: list[EventRecord]
    next: int = Field(description="pass as `after` for the following page")


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


class OpenApiDocument(RootModel[dict[str, Any]]):
    """This document."""
