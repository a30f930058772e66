"""The answers' shapes, as pydantic models: the OpenAPI document's response schemas and what
the routes build every answer from (`wire.answer`), camelCase on the wire, no field beyond these.
Those that code below the API must build too live in service/handling/answers.py."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, RootModel

from service.handling import answers

# Listed here too, so that every answer's shape is named in one module.
Circuit = answers.Circuit
ServerHealth = answers.ServerHealth
ContainerState = answers.ContainerState
InstanceStatus = answers.InstanceStatus
McpServerStatus = answers.McpServerStatus
BreakerConfig = answers.BreakerConfig
CheckpointsVerdict = answers.CheckpointsVerdict
KnownHeadVerdict = answers.KnownHeadVerdict
ChainReport = answers.ChainReport
AuditPublicKey = answers.AuditPublicKey


class ErrorBody(answers.Answer):
    code: str = Field(description="stable, snake_case")
    message: str = Field(description="for a person; never a secret or a stack trace")
    details: list[dict[str, Any]] = Field(description="for 422, one entry per bad field")


class ErrorAnswer(answers.Answer):
    """Every refusal of a route outside the legacy ones."""

    error: ErrorBody


class Accepted(answers.Answer):
    """A command's answer: the global position of the last event it appended."""

    position: int


# -- MCP servers and groups ------------------------------------------------------------------


class McpServerRead(answers.McpServerStatus):
    position: int


class McpServerList(answers.Answer):
    position: int
    mcp_servers: list[McpServerStatus]


class DeployAccepted(answers.Answer):
    group_id: str
    mcp_servers: list[str] = Field(description="the ids of the servers deployed")
    position: int


class DeploySettled(answers.Answer):
    """`?wait=true`: every server's status once all its replicas run and pass their probes."""

    group_id: str
    mcp_servers: list[McpServerStatus]
    position: int


class ScaleSettled(answers.Answer):
    position: int
    mcp_server: McpServerStatus


class GroupCreated(answers.Answer):
    id: str
    name: str
    internal: bool
    position: int


class NetworkView(answers.Answer):
    name: str | None
    internal: bool


class LimitsView(answers.Answer):
    memory_mb: int | None
    cpus: float | None
    pids: int | None


class GroupRead(answers.Answer):
    id: str
    name: str
    network: NetworkView
    resource_limits: LimitsView | None
    status: Literal["empty", "starting", "running", "degraded", "failed"]
    mcp_servers: list[McpServerStatus]
    position: int


# -- health ------------------------------------------------------------------------------------


class Liveness(answers.Answer):
    status: Literal["ok"]
    position: int
    instance: str = Field(description="this DTMA's id, kept in its log; on all it makes in Docker")
    loop_failures: dict[str, int] = Field(
        description="background loops that raised (a bug) and were restarted since the start, "
        "by component; empty while none has"
    )


class FoldFailure(answers.Answer):
    position: int = Field(description="the event the projections cannot fold")
    type: str
    message: str = Field(description="why: never the event's data")


class ProjectionsStopped(answers.Answer):
    position: int = Field(description="the last position the projections folded")
    head: int = Field(description="the log's head")
    error: FoldFailure


class Degraded(answers.Answer):
    status: Literal["degraded"]
    position: int
    instance: str
    projections: ProjectionsStopped
    loop_failures: dict[str, int] = Field(
        description="background loops that raised (a bug) and were restarted since the start, "
        "by component; empty while none has"
    )


class BreakerConfigured(answers.Answer):
    config: BreakerConfig
    position: int


class ReplicaHealth(answers.Answer):
    replica: int
    container_id: str | None
    state: ContainerState
    health: Literal["healthy", "unhealthy", "starting"]
    since: str | None
    last_probe_error: str | None
    exit_code: int | None
    oom_killed: bool


class Transition(answers.Answer):
    from_: Circuit = Field(alias="from")
    to: Circuit
    cause: str
    position: int
    at: str


class ServerHealthReport(answers.Answer):
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


class FailedContainer(answers.Answer):
    container_id: str | None
    mcp_server_id: str
    replica: int
    exit_code: int | None
    oom_killed: bool
    failed_at: str
    reason: str | None


class RecommendedAction(answers.Answer):
    mcp_server_id: str
    action: str
    reason: str


class ForeignContainer(answers.Answer):
    container_id: str
    name: str
    instance: str | None = Field(description="the instance that made it; null: no label")
    group: str | None
    mcp_server_id: str | None


class ComprehensiveReport(answers.Answer):
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


class CredentialsAccepted(answers.Answer):
    mcp_server_id: str
    version: int
    position: int


class CredentialsRevoked(answers.Answer):
    versions: list[int]
    position: int


class OAuthProviderStatus(answers.Answer):
    provider: str
    token_expires_at: str | None
    last_error: str | None


class CredentialStatus(answers.Answer):
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


class PublicKey(answers.Answer):
    public_key: str = Field(description="X25519, base64")
    algorithm: str


# -- the event log -----------------------------------------------------------------------------


class EventRecord(answers.Answer):
    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any] = Field(description="as stored (snake_case): the text the hash covers")
    metadata: dict[str, Any]
    recorded_at: str
    hash: str


class EventPage(answers.Answer):
    events: list[EventRecord]
    next: int = Field(description="pass as `after` for the following page")


class OpenApiDocument(RootModel[dict[str, Any]]):
    """This document."""
