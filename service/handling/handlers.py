"""Command handlers: load the stream, decide, append with the expected version and key.

`COMMAND_HANDLERS` is the explicit table the HTTP layer dispatches through.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from eventstore.catalogue import Catalogue
from eventstore.errors import StoreError, VersionConflictError
from eventstore.records import AppendResult
from eventstore.store import EventStore
from projections import events, groups, health
from projections.runner import ProjectionRunner
from service import errors
from service.container_policy import DEFAULT_POLICY, ContainerPolicy
from service.handling import answers, commands, decisions
from service.handling.stream_locks import StreamLocks


@dataclass(frozen=True, slots=True)
class CommandContext:
    store: EventStore
    catalogue: Catalogue
    runner: ProjectionRunner
    locks: StreamLocks = field(default_factory=StreamLocks)
    policy: ContainerPolicy = DEFAULT_POLICY  # what a command may ask of its containers
    # breaker stream -> (its version, its settings) as last read: a command reads only what is
    # newer, not the whole stream, which grows by one event with every setting
    breaker_tails: dict[str, tuple[int, health.BreakerSettings]] = field(default_factory=dict)


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


async def configure_breaker(
    ctx: CommandContext, command: commands.ConfigureBreaker, meta: CommandMeta
) -> dict[str, Any]:
    """Settings merge over the stream's latest. Concurrent commands decide in turn under the
    stream's lock, each on the settings the previous one will write, and their appends share a
    commit: the lock is held while deciding, not while the append becomes durable. An append
    that fails makes the ones decided after it fail their version check and decide again on
    what the log really holds. (This relies on one service appending to its log, as DTMA is
    run; a write from elsewhere is still caught by the version check of the append it raced.)"""
    stream = health.breaker_stream_of(command.mcp_server_id)
    for attempt in range(ATTEMPTS):
        async with ctx.locks.held(stream):
            answer, appending = await _decide_breaker(ctx, command, meta, stream)
        try:
            appended = await appending
        except StoreError as exc:
            ctx.breaker_tails.pop(stream, None)
            if not isinstance(exc, VersionConflictError) or attempt == ATTEMPTS - 1:
                raise
            continue
        if appended.replayed:  # nothing appended: what was expected to be there is not
            ctx.breaker_tails.pop(stream, None)
        return {**(appended.result or answer), "position": appended.last_position}
    raise AssertionError("unreachable")


async def _decide_breaker(
    ctx: CommandContext, command: commands.ConfigureBreaker, meta: CommandMeta, stream: str
) -> tuple[dict[str, Any], Awaitable[AppendResult]]:
    """The answer, and the append submitted (not yet durable) with the version it will make
    taken as the stream's from now on."""
    version, current = await _breaker_settings(ctx, stream)
    event = decisions.configure_breaker(current, command)
    if command.mcp_server_id is None:
        config = health.effective(health.settings_of(event), None)
    else:
        _, default = await _breaker_settings(ctx, health.breaker_stream_of(None))
        config = health.effective(default, health.settings_of(event))
    answer = {"config": breaker_config_answer(command.mcp_server_id, config).wire()}
    appending = ctx.store.submit(
        stream,
        [ctx.catalogue.to_new_event(event)],
        expected_version=version,
        idempotency_key=meta.idempotency_key,
        metadata=meta.metadata(),
        request_hash=meta.request_hash,
        result=answer,
    )
    ctx.breaker_tails[stream] = (version + 1, health.settings_of(event))
    return answer, appending


async def _breaker_settings(ctx: CommandContext, stream: str) -> tuple[int, health.BreakerSettings]:
    """The stream's version and latest settings: as this process last wrote or submitted them,
    else read from the log. (An append from elsewhere makes the next append here fail its
    version check, which forgets what was known, so the retry reads the log.)"""
    known = ctx.breaker_tails.get(stream)
    if known is not None:
        return known
    history = await ctx.store.read_stream(stream)
    version = history[-1].version if history else 0
    settings = health.latest_settings(_decoded(ctx, history))
    ctx.breaker_tails[stream] = (version, settings)
    return version, settings


def breaker_config_answer(
    server_id: str | None, config: health.BreakerConfig
) -> answers.BreakerConfig:
    return answers.BreakerConfig(
        mcp_server_id=server_id,
        failure_threshold=config.failure_threshold,
        recovery_threshold=config.recovery_threshold,
        open_timeout=config.open_timeout_ms,
        circuit_breaker_enabled=config.enabled,
    )


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


GroupDecision = Callable[[groups.GroupsState, Any], "events.Event | list[events.Event]"]
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Decided:
    """What a decision appends, where, at which version of that stream, and the answer."""

    stream: str
    events: list[events.Event]
    expected_version: int
    answer: dict[str, Any]


async def decide_and_append(
    ctx: CommandContext, meta: CommandMeta, decide: Callable[[], Decided | dict[str, Any]]
) -> dict[str, Any]:
    """Bring the projections up to the log's head, `decide` on them, append at the stream's
    version. The stream is learnt from a first decision; then, under that stream's lock, the
    command decides again on the head (concurrent commands on one stream go in turn, each on
    what the one before it appended) and appends. A version conflict, which then comes only
    from outside this process, makes it decide again, up to three times. A decision that
    appends nothing returns its answer instead."""
    for attempt in range(ATTEMPTS):
        first = await _decide_at_head(ctx, decide)
        if not isinstance(first, Decided):
            return first
        async with ctx.locks.held(first.stream):
            decided = await _decide_at_head(ctx, decide)
            if not isinstance(decided, Decided):
                return decided
            try:
                appended = await ctx.store.append(
                    decided.stream,
                    [ctx.catalogue.to_new_event(event) for event in decided.events],
                    expected_version=decided.expected_version,
                    idempotency_key=meta.idempotency_key,
                    metadata=meta.metadata(),
                    request_hash=meta.request_hash,
                    result=decided.answer,
                )
            except VersionConflictError:
                if attempt == ATTEMPTS - 1:
                    raise
                continue
        return {**(appended.result or decided.answer), "position": appended.last_position}
    raise AssertionError("unreachable")


async def _decide_at_head(
    ctx: CommandContext, decide: Callable[[], Decided | dict[str, Any]]
) -> Decided | dict[str, Any]:
    await ctx.runner.current()  # never decide on stale state
    return decide()


async def decide_on_groups(
    ctx: CommandContext,
    command: commands.Command,
    meta: CommandMeta,
    decide: GroupDecision,
    answer: Callable[[list[events.Event]], dict[str, Any]],
) -> dict[str, Any]:
    """Decide on the current desired state and append to the group's stream with its version."""

    def decided() -> Decided:
        state = ctx.runner.state(groups.PROJECTION)
        made = decide(state, command)
        produced = made if isinstance(made, list) else [made]
        stream = groups.stream_of(_group_id(produced[0]))
        version = state.stream_versions.get(stream, 0)
        return Decided(stream, produced, version, answer(produced))

    return await decide_and_append(ctx, meta, decided)


def _group_id(event: events.Event) -> str:
    group_id = getattr(event, "group_id", None)
    assert isinstance(group_id, str), f"{type(event).__name__} names no group"
    return group_id


async def deploy_group(
    ctx: CommandContext, command: commands.DeployGroup, meta: CommandMeta
) -> dict[str, Any]:
    def answer(_produced: list[events.Event]) -> dict[str, Any]:
        return {"groupId": command.group_id, "mcpServers": [s.id for s in command.mcp_servers]}

    decide = functools.partial(decisions.deploy_group, policy=ctx.policy)
    return await decide_on_groups(ctx, command, meta, decide, answer)


async def create_group(
    ctx: CommandContext, command: commands.CreateGroup, meta: CommandMeta
) -> dict[str, Any]:
    def answer(produced: list[events.Event]) -> dict[str, Any]:
        declared = produced[0]
        assert isinstance(declared, events.GroupDeclared)
        return {"id": declared.group_id, "name": declared.name, "internal": declared.internal}

    return await decide_on_groups(ctx, command, meta, decisions.create_group, answer)


def _no_answer(_produced: list[events.Event]) -> dict[str, Any]:
    return {}


async def scale_server(
    ctx: CommandContext, command: commands.ScaleServer, meta: CommandMeta
) -> dict[str, Any]:
    decide = functools.partial(decisions.scale_server, policy=ctx.policy)
    return await decide_on_groups(ctx, command, meta, decide, _no_answer)


async def remove_server(
    ctx: CommandContext, command: commands.RemoveServer, meta: CommandMeta
) -> dict[str, Any]:
    return await decide_on_groups(ctx, command, meta, decisions.remove_server, _no_answer)


async def remove_group(
    ctx: CommandContext, command: commands.RemoveGroup, meta: CommandMeta
) -> dict[str, Any]:
    return await decide_on_groups(ctx, command, meta, decisions.remove_group, _no_answer)


async def restart_group(
    ctx: CommandContext, command: commands.RestartGroup, meta: CommandMeta
) -> dict[str, Any]:
    return await decide_on_groups(ctx, command, meta, decisions.restart_group, _no_answer)


Handler = Callable[[CommandContext, Any, CommandMeta], Awaitable[dict[str, Any]]]
COMMAND_HANDLERS: dict[type[commands.Command], Handler] = {
    commands.ConfigureBreaker: configure_breaker,
    commands.DeployGroup: deploy_group,
    commands.CreateGroup: create_group,
    commands.ScaleServer: scale_server,
    commands.RemoveServer: remove_server,
    commands.RemoveGroup: remove_group,
    commands.RestartGroup: restart_group,
}


async def handle(
    ctx: CommandContext, command: commands.Command, meta: CommandMeta
) -> dict[str, Any]:
    """Run a command once: a known Idempotency-Key gets its first answer and appends nothing."""
    replayed = await replay_if_known(ctx, meta)
    if replayed is not None:
        return replayed
    return await COMMAND_HANDLERS[type(command)](ctx, command, meta)
