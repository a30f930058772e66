"""Commands as they arrive over HTTP: camelCase on the wire, unknown fields refused, strict."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
ResourceId = Annotated[str, Field(pattern=ID_PATTERN)]


class Command(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        extra="forbid",
        frozen=True,
        strict=True,
        validate_by_alias=True,
        validate_by_name=True,  # in Python; the HTTP layer validates by alias only
    )


class ConfigureBreaker(Command):
    """POST /health/circuit-breaker: without `mcpServerId` it sets the default for all."""

    mcp_server_id: ResourceId | None = None
    failure_threshold: Annotated[int, Field(ge=1, le=1000)] | None = None
    recovery_threshold: Annotated[int, Field(ge=1, le=1000)] | None = None
    open_timeout: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    circuit_breaker_enabled: bool | None = None


PLAIN_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
IMAGE = r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$"
CAPABILITY = r"^[A-Z][A-Z_]{1,31}$"
Argument = Annotated[str, Field(min_length=1, max_length=4096)]
# Signals a server may ask for after a new configuration: ones a process can catch.
ReloadSignal = Literal["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGQUIT", "SIGTERM", "SIGWINCH"]


class NetworkConfig(Command):
    internal: bool = False


class ResourceLimits(Command):
    memory_mb: Annotated[int, Field(ge=6, le=1_048_576)] | None = None
    cpus: Annotated[float, Field(gt=0, le=256)] | None = None
    pids: Annotated[int, Field(ge=16, le=1_000_000)] | None = None


class HealthCheckSpec(Command):
    type: Literal["mcp", "http", "tcp", "none"] = "mcp"
    health_check_url: Annotated[str, Field(pattern=r"^/\S{0,511}$")] | None = None
    health_check_interval: Annotated[int, Field(ge=100, le=3_600_000)] = 5_000
    health_check_timeout: Annotated[int, Field(ge=50, le=600_000)] = 2_000
    failure_threshold: Annotated[int, Field(ge=1, le=1000)] = 3
    recovery_threshold: Annotated[int, Field(ge=1, le=1000)] = 2
    start_period: Annotated[int, Field(ge=0, le=3_600_000)] = 30_000
    circuit_breaker_enabled: bool = True


class CredentialRequirementSpec(Command):
    name: Annotated[str, Field(pattern=PLAIN_NAME)]
    mode: Literal["env", "file"]


PullPolicy = Literal["IfNotPresent", "Always", "Never"]


class InitContainerSpec(Command):
    image: Annotated[str, Field(pattern=IMAGE)]
    image_pull_policy: PullPolicy = "IfNotPresent"
    command: Annotated[list[Argument], Field(max_length=256)] | None = None


class McpServerSpec(Command):
    id: ResourceId
    image: Annotated[str, Field(pattern=IMAGE)]
    image_pull_policy: PullPolicy = "IfNotPresent"
    command: Annotated[list[Argument], Field(max_length=256)] | None = None
    env: Annotated[dict[Annotated[str, Field(pattern=ENV_NAME)], str], Field(max_length=256)] = {}
    port: Annotated[int, Field(ge=1, le=65_535)] = 8000
    # stdio: DTMA attaches to the container's stdin and stdout and serves it over Streamable
    # HTTP itself (service/stdio); `port` and `path` then mean nothing.
    transport: Literal["streamable-http", "stdio"] = "streamable-http"
    path: Annotated[str, Field(pattern=r"^/\S{0,511}$")] = "/mcp"
    replicas: Annotated[int, Field(ge=0, le=20)] = 1
    depends_on: Annotated[list[ResourceId], Field(max_length=50)] = []
    resource_limits: ResourceLimits | None = None
    health_check: HealthCheckSpec = HealthCheckSpec()
    credential_requirements: Annotated[list[CredentialRequirementSpec], Field(max_length=64)] = []
    init_containers: Annotated[list[InitContainerSpec], Field(max_length=16)] = []
    cap_add: Annotated[list[Annotated[str, Field(pattern=CAPABILITY)]], Field(max_length=16)] = []
    reload_signal: ReloadSignal | None = None
    publish_port: bool | None = None

    @model_validator(mode="after")
    def _probed_through_the_bridge(self) -> McpServerSpec:
        if self.transport == "stdio" and self.health_check.type in ("http", "tcp"):
            raise ValueError("a stdio server is probed with `mcp` (through DTMA) or `none`")
        return self


class DeployGroup(Command):
    """POST /mcp-servers/deploy: declares a group (created if new) and its servers."""

    group_id: ResourceId
    network_config: NetworkConfig | None = None
    resource_limits: ResourceLimits | None = None
    mcp_servers: Annotated[list[McpServerSpec], Field(min_length=1, max_length=50)]


class CreateGroup(Command):
    """POST /container-groups."""

    id: ResourceId
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    network_config: NetworkConfig | None = None
    resource_limits: ResourceLimits | None = None


class ScaleServer(Command):
    """PUT /mcp-servers/scale."""

    mcp_server_id: ResourceId
    replicas: Annotated[int, Field(ge=0, le=20)]


class RemoveServer(Command):
    """DELETE /mcp-servers/{id} (the id comes from the path)."""

    mcp_server_id: ResourceId


class RemoveGroup(Command):
    """DELETE /container-groups/{id}."""

    group_id: ResourceId


class RestartGroup(Command):
    """PUT /container-groups/{id}/restart."""

    group_id: ResourceId


# -- credentials -------------------------------------------------------------------------------

SECRET_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"  # a plain file or variable name: no paths
MAX_SECRET_CHARS = 65_536


class Sealed(Command):
    """A value sealed to the service's public key (an X25519 SealedBox, base64)."""

    sealed: Annotated[str, Field(min_length=1, max_length=2 * MAX_SECRET_CHARS)]


SecretValue = Annotated[str, Field(min_length=1, max_length=MAX_SECRET_CHARS)] | Sealed


class ApiKeySpec(Command):
    name: Annotated[str, Field(pattern=SECRET_NAME)]
    value: SecretValue
    mode: Literal["env", "file"] = "env"


class CertificateSpec(Command):
    name: Annotated[str, Field(pattern=SECRET_NAME)]
    pem: SecretValue


class OAuthProviderSpec(Command):
    """Tokens obtained (refresh-token grant, or client credentials without a refresh token) and
    injected as OAUTH_<PROVIDER>_ACCESS_TOKEN."""

    provider: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")]
    client_id: Annotated[str, Field(min_length=1, max_length=500)]
    client_secret: SecretValue
    scopes: Annotated[
        list[Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,200}$")]], Field(max_length=50)
    ] = []
    token_endpoint: Annotated[str, Field(pattern=r"^https?://[^\s]{1,2000}$")]
    refresh_token: SecretValue | None = None


class CredentialsSpec(Command):
    api_keys: Annotated[list[ApiKeySpec], Field(max_length=64)] = []
    oauth_providers: Annotated[list[OAuthProviderSpec], Field(max_length=16)] = []
    certificates: Annotated[list[CertificateSpec], Field(max_length=16)] = []


class InjectCredentials(Command):
    """POST /credentials/inject."""

    mcp_server_id: ResourceId
    agent_id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
    credentials: CredentialsSpec | None = None  # None: fetched from the backend
    expiration_time: Annotated[str, Field(max_length=40)] | None = None


class RotateCredentials(Command):
    """PUT /credentials/rotate: a new version for the same agent, from the body or the backend."""

    mcp_server_id: ResourceId
    credentials: CredentialsSpec | None = None
    expiration_time: Annotated[str, Field(max_length=40)] | None = None


class RevokeCredentials(Command):
    """DELETE /credentials/{mcpServerId}."""

    mcp_server_id: ResourceId


# -- configuration -----------------------------------------------------------------------------

JsonObject = dict[str, Any]
ENVIRONMENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class DefineTemplate(Command):
    """POST /config-templates: a JSON Schema, defaults, and per-environment overrides."""

    id: ResourceId
    json_schema: JsonObject = Field(alias="schema")
    defaults: JsonObject = {}
    environments: Annotated[
        dict[Annotated[str, Field(pattern=ENVIRONMENT_NAME)], JsonObject], Field(max_length=64)
    ] = {}


class ConfigureServer(Command):
    """PUT /mcp-servers/{id}/config (the id comes from the path). Without `templateId` the
    server's current template applies; `templateId: null` detaches it from its template."""

    template_id: ResourceId | None = None
    config: JsonObject


class RollbackConfig(Command):
    """POST /mcp-servers/{id}/config/rollback: that version's configuration, as a new one."""

    version: Annotated[int, Field(ge=1)]


class ConfigureServerById(Command):
    """A ConfigureServer body with what its route adds: the server (from the path) and the
    environment whose overrides apply (the service's setting)."""

    mcp_server_id: ResourceId
    environment: str | None
    body: ConfigureServer


class RollbackConfigById(Command):
    """A RollbackConfig body with the server its path names."""

    mcp_server_id: ResourceId
    body: RollbackConfig
