"""What every command handler is given: the context (the service's parts, and this process's
stream state), and the metadata (who asked, and why)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventstore import catalogue as eventstore_catalogue
from eventstore import store as eventstore_store
from projections import runner as projections_runner
from service import container_policy
from service.handling import commands
from service.handling.streams import Streams

# An answer is a dict for the contract's routes, whatever the legacy routes render otherwise.
Handler = Callable[["CommandContext", Any, "CommandMeta"], Awaitable[Any]]
Handlers = Mapping[type[commands.Command], Handler]


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Frozen: which parts a handler works with is fixed when the service starts. All are
    immutable or shared services (the store, the runner) except `streams`, this process's one
    piece of mutable command state (stream locks and tails), which is never replaced.
    `handlers` is the one table, every feature's, that `handling.handlers.handle` dispatches
    through; the composition root builds it."""

    store: eventstore_store.EventStore
    catalogue: eventstore_catalogue.Catalogue
    runner: projections_runner.ProjectionRunner
    policy: container_policy.ContainerPolicy = (
        container_policy.DEFAULT_POLICY
    )  # what a command may ask of its containers
    handlers: Handlers = field(default_factory=dict)
    streams: Streams = field(default_factory=Streams)


@dataclass(frozen=True, slots=True)
class CommandMeta:
    """Who asked and why: stored as every appended event's metadata."""

    actor: str
    correlation_id: str
    idempotency_key: str | None = None
    request_hash: str | None = None
    causation_id: str | None = None
    component: str | None = None  # which part of the service, when the actor is `system`

    def metadata(self) -> dict[str, Any]:
        data = {"actor": self.actor, "correlation_id": self.correlation_id}
        if self.causation_id:
            data["causation_id"] = self.causation_id
        if self.component:
            data["component"] = self.component
        return data


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()
