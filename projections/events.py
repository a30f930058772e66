"""The MCP vocabulary: every event type DTMA records, registered into the store's catalogue.

Events are frozen pydantic models named in the past tense for what is true once appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from eventstore.catalogue import Catalogue
from projections import specs


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, slots=True)
class Envelope:
    """Where an event sits in the log, for folds that record positions or times."""

    position: int
    stream_id: str
    version: int
    recorded_at: str


class CircuitBreakerConfigured(Event):
    """The breaker settings of one MCP server (or, with no server, the default for all) are now
    these; a field left None inherits (a server's from the default, the default's built-in)."""

    mcp_server_id: str | None = None
    failure_threshold: int | None = Field(default=None, ge=1)
    recovery_threshold: int | None = Field(default=None, ge=1)
    open_timeout_ms: int | None = Field(default=None, ge=0)
    enabled: bool | None = None


class GroupDeclared(Event):
    """A container group exists with these settings (created, or its settings changed)."""

    group_id: str
    name: str
    internal: bool = False
    limits: specs.Limits | None = None


class ServerDeclared(Event):
    """An MCP server of a group should run as `spec` says (new, or its spec changed)."""

    group_id: str
    spec: specs.ServerSpec


class ReplicasScaled(Event):
    group_id: str
    server_id: str
    replicas: int


class ServerRemoved(Event):
    """The server should no longer run; its containers are to be removed."""

    group_id: str
    server_id: str


class GroupRemoved(Event):
    """The group, its servers and its network are to be removed."""

    group_id: str


class GroupRestartRequested(Event):
    """Every server of the group is to be restarted, in this (dependency) order."""

    group_id: str
    order: tuple[str, ...]


class NetworkCreated(Event):
    group_id: str
    network: str
    internal: bool


class NetworkRemoved(Event):
    group_id: str
    network: str


class ContainerCreated(Event):
    """The reconciler created a replica's container (not started yet)."""

    group_id: str
    server_id: str
    replica: int
    container_id: str
    name: str
    generation: int
    credentials_version: int | None = None  # the version whose env secrets it was given


class ContainerStarted(Event):
    """Running. `host_port` is where the host reaches it on loopback; `address`, its IP on its
    group's network, is recorded where DTMA reaches it there: in network reach (DTMA in a
    container), and where no port is published (an internal network, `publishPort: false`)."""

    server_id: str
    replica: int
    container_id: str
    host_port: int | None = None
    address: str | None = None


class ContainerFailedToStart(Event):
    """Creating or starting a replica failed; `reason` says why (an image missing, say)."""

    group_id: str
    server_id: str
    replica: int
    reason: str
    container_id: str | None = None


class InitContainerCompleted(Event):
    """An init container ran to completion (exit 0) before the server's replicas start."""

    group_id: str
    server_id: str
    index: int
    image: str
    generation: int


class ContainerDied(Event):
    server_id: str
    replica: int
    container_id: str
    exit_code: int | None = None
    oom_killed: bool = False


class ContainerRemoved(Event):
    """A replica's container is gone: removed by the reconciler (`reason`) or from outside."""

    server_id: str
    replica: int
    container_id: str
    reason: str


Circuit = Literal["closed", "open", "half_open"]


class ReplicaHealthChanged(Event):
    """Probes changed their verdict on one replica's container; `reason` is what they saw last.

    Appended only on a change, so a healthy fleet adds nothing to the log."""

    server_id: str
    replica: int
    container_id: str
    health: Literal["healthy", "unhealthy"]
    reason: str | None = None
    timed_out: bool = False


class CircuitTransitioned(Event):
    """A server's circuit breaker moved from one state to another, for `cause`. On opening,
    `open_timeout_ms` says how long it stays open before a recovery attempt."""

    server_id: str
    from_state: Circuit
    to_state: Circuit
    cause: str
    failures: int = 0
    open_timeout_ms: int | None = None


class CredentialsInjected(Event):
    """A new version of a server's credentials, bound to an agent. Its secrets are sealed with
    the data key `key_id`; destroying that key forgets them for good."""

    server_id: str
    agent_id: str
    version: int
    key_id: str
    secrets: tuple[specs.SealedSecret, ...]
    source: Literal["request", "backend", "oauth", "expiry"] = "request"
    expires_at: str | None = None
    oauth: tuple[specs.OAuthGrant, ...] = ()


class CredentialsApplied(Event):
    """A replica's container now holds a version's file secrets."""

    server_id: str
    version: int
    replica: int
    container_id: str
    names: tuple[str, ...]


class CredentialsFailed(Event):
    """Injecting a version into a replica failed; `reason` says why (never a value)."""

    server_id: str
    version: int
    reason: str
    replica: int | None = None
    container_id: str | None = None


class OAuthRefreshFailed(Event):
    """Obtaining a provider's access token failed; retried with backoff. Never a value."""

    server_id: str
    version: int
    provider: str
    reason: str


class CredentialsRetired(Event):
    """Older versions, replaced everywhere by a newer one, are forgotten: keys destroyed."""

    server_id: str
    versions: tuple[int, ...]
    key_ids: tuple[str, ...]


class CredentialsRevoked(Event):
    """The server's credentials are removed from its replicas and their data keys destroyed."""

    server_id: str
    versions: tuple[int, ...]
    key_ids: tuple[str, ...]


class RegistryCredentialsStored(Event):
    """Credentials DTMA pulls from the registry `server` with. The password is sealed with the
    data key `key_id` (ciphertext only); destroying that key forgets it for good."""

    server: str
    username: str
    key_id: str
    password: str


class RegistryCredentialsForgotten(Event):
    """The registry's credentials are forgotten: their data key is destroyed."""

    server: str
    key_id: str


class ImagePullStarted(Event):
    """A pull of `image` for a server began (not when the image was on this host already);
    its result is the `ImagePulled` or `ImagePullFailed` that follows. Progress is not logged."""

    server_id: str
    generation: int
    image: str


class ImagePulled(Event):
    """The image a server's declaration runs, resolved: `digest` (the registry's manifest
    digest, or the image id of an image only this host has) and `reference`, what its replicas
    are created from until it is declared again. `generation`: the position of that
    `ServerDeclared` (before restarts kept the pin, the restart's). `pulled`: fetched now, else
    found on this host."""

    server_id: str
    generation: int
    image: str
    digest: str
    reference: str
    pulled: bool = True


class ImagePullFailed(Event):
    """A server's image could not be had: `reason` is the engine's or the registry's message
    (never a credential). Not a container failure: the breaker does not count it."""

    server_id: str
    generation: int
    image: str
    reason: str


JsonObject = dict[str, Any]


class ConfigTemplateDefined(Event):
    """A configuration template exists: a JSON Schema, defaults, and per-environment overrides
    of those defaults. Templates never change; a different one needs a new id."""

    template_id: str
    json_schema: JsonObject
    defaults: JsonObject = {}
    environments: dict[str, JsonObject] = {}


class ServerConfigured(Event):
    """A server's configuration has a new version: `config` is the effective one (template
    defaults, then `environment`'s overrides, then `given`), written to every replica.
    `rolled_back_from` names the version a rollback copied."""

    server_id: str
    version: int
    config: JsonObject
    given: JsonObject = {}
    template_id: str | None = None
    environment: str | None = None
    rolled_back_from: int | None = None


class ConfigApplied(Event):
    """A replica's container holds a configuration version at /etc/mcp/config.json; `signal`
    is what it was sent to reload it (None: written before it started, or no reload signal)."""

    server_id: str
    version: int
    replica: int
    container_id: str
    signal: str | None = None


class ConfigApplyFailed(Event):
    """Writing a configuration version into a replica (or signalling it) failed; retried."""

    server_id: str
    version: int
    replica: int
    container_id: str
    reason: str


class EventSkipped(Event):
    """An operator decided that the event at `position` (of this type and hash), which this
    release cannot read, is passed over by every fold: live, on rebuild and on replay.
    Appended to the stream `log-skips` by `dtma skip`; the event itself stays in the chain."""

    position: int = Field(ge=1)
    event_type: str
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    reason: str = Field(min_length=1, max_length=1000)


CATALOGUE = Catalogue()
for _model in (
    CircuitBreakerConfigured,
    GroupDeclared,
    ServerDeclared,
    ReplicasScaled,
    ServerRemoved,
    GroupRemoved,
    GroupRestartRequested,
    NetworkCreated,
    NetworkRemoved,
    ContainerCreated,
    ContainerStarted,
    ContainerFailedToStart,
    InitContainerCompleted,
    ContainerDied,
    ContainerRemoved,
    ReplicaHealthChanged,
    CircuitTransitioned,
    CredentialsInjected,
    CredentialsApplied,
    CredentialsFailed,
    CredentialsRevoked,
    CredentialsRetired,
    OAuthRefreshFailed,
    ConfigTemplateDefined,
    ServerConfigured,
    ConfigApplied,
    ConfigApplyFailed,
    EventSkipped,
    RegistryCredentialsStored,
    RegistryCredentialsForgotten,
    ImagePullStarted,
    ImagePulled,
    ImagePullFailed,
):
    CATALOGUE.register(_model)
