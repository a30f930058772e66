"""Command handlers: load the stream, decide, append with the expected version and key.

`COMMAND_HANDLERS` is the explicit table the HTTP layer dispatches through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from eventstore.catalogue import Catalogue
from eventstore.store import EventStore
from projections import events, health
from service import commands, decisions, errors


@dataclass(frozen=True, slots=True)
class CommandContext:
    store: EventStore
    catalogue: Catalogue


@dataclass(frozen=True, slots=True)
class CommandMeta:
    """Who asked and why: stored as every appended event's metadata."""

    actor: str
    correlation_id: str
    idempotency_key: str | None = None
    request_hash: str | None = None
    causation_id: str | None = None

    def metadata(self) -> dict[str, Any]:
        data = {"actor": self.actor, "correlation_id": self.correlation_id}
        if self.causation_id:
            data["causation_id"] = self.causation_id
        return data


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()


async def configure_breaker(
    ctx: CommandContext, command: commands.ConfigureBreaker, meta: CommandMeta
) -> dict[str, Any]:
    stream = decisions.breaker_stream(command.mcp_server_id)
    history = await ctx.store.read_stream(stream)
    event = decisions.configure_breaker(health.latest_settings(_decoded(ctx, history)), command)
    if command.mcp_server_id is None:
        config = health.effective(health.settings_of(event), None)
    else:
        default = await ctx.store.read_stream(decisions.breaker_stream(None))
        config = health.effective(
            health.latest_settings(_decoded(ctx, default)), health.settings_of(event)
        )
    answer = {"config": breaker_config_json(command.mcp_server_id, config)}
    appended = await ctx.store.append(
        stream,
        [ctx.catalogue.to_new_event(event)],
        expected_version=len(history),
        idempotency_key=meta.idempotency_key,
        metadata=meta.metadata(),
        request_hash=meta.request_hash,
        result=answer,
    )
    return {**(appended.result or answer), "position": appended.last_position}


def breaker_config_json(server_id: str | None, config: health.BreakerConfig) -> dict[str, Any]:
    return {
        "mcpServerId": server_id,
        "failureThreshold": config.failure_threshold,
        "recoveryThreshold": config.recovery_threshold,
        "openTimeout": config.open_timeout_ms,
        "circuitBreakerEnabled": config.enabled,
    }


async def replay_if_known(ctx: CommandContext, meta: CommandMeta) -> dict[str, Any] | None:
    """The first answer to a repeated Idempotency-Key, before deciding anything again."""
    if not meta.idempotency_key:
        return None
    known = await ctx.store.lookup_idempotency_key(meta.idempotency_key)
    if known is None:
        return None
    if known.request_hash != meta.request_hash:
        raise errors.ConflictError(
            "this Idempotency-Key was already used for a different request",
            code="idempotency_key_reused",
        )
    return {**(known.result or {}), "position": known.positions[-1]}


def _decoded(ctx: CommandContext, history: list[Any]) -> list[events.Event]:
    return [cast(events.Event, ctx.catalogue.decode(recorded)) for recorded in history]


Handler = Callable[[CommandContext, Any, CommandMeta], Awaitable[dict[str, Any]]]
COMMAND_HANDLERS: dict[type[commands.Command], Handler] = {
    commands.ConfigureBreaker: configure_breaker,
}


async def handle(
    ctx: CommandContext, command: commands.Command, meta: CommandMeta
) -> dict[str, Any]:
    """Run a command once: a known Idempotency-Key gets its first answer and appends nothing."""
    replayed = await replay_if_known(ctx, meta)
    if replayed is not None:
        return replayed
    return await COMMAND_HANDLERS[type(command)](ctx, command, meta)
