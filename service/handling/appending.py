"""The one way a command's events reach the log: answer a repeated Idempotency-Key, then, under
the stream's lock, decide on the newest state and append with the stream's expected version."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eventstore import errors as store_errors
from eventstore import records
from projections import events
from service import errors
from service.handling.context import CommandContext, CommandMeta

ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Decided:
    """What a decision appends, where, at which version of that stream, and the answer.
    `after` is the stream's state once these events are appended, for a decision made on its
    stream's own state (see `Streams`); None for one made on the read models."""

    stream: str
    events: list[events.Event]
    expected_version: int
    answer: dict[str, Any]
    after: object | None = None


Decision = Decided | dict[str, Any]  # a dict: the answer of a decision that appends nothing
Decide = Callable[[], Awaitable[Decision]]


async def decide_and_append(
    ctx: CommandContext, meta: CommandMeta, decide: Decide, stream: str | None = None
) -> dict[str, Any]:
    """Decide, append, answer with the last event's position. A repeated Idempotency-Key gets
    its first answer and nothing is decided. Commands on one stream decide in turn under its
    lock, each on what the one before it appends, so none is refused for racing another
    (`stream`, when known beforehand; else a first decision names it). A version conflict, which
    then comes only from outside this process, makes the command decide again, three times at
    most. A decision that appends nothing returns its answer."""
    replayed = await replay_if_known(ctx, meta)
    if replayed is not None:
        return replayed
    for attempt in range(ATTEMPTS):
        locked = stream
        if locked is None:
            first = await decide()
            if not isinstance(first, Decided):
                return first
            locked = first.stream
        submitted = await _decide_in_turn(ctx, meta, decide, locked, attempt < ATTEMPTS - 1)
        if not isinstance(submitted, tuple):
            return submitted
        decided, settling = submitted
        appended = await settling
        if appended is not None:
            return {**(appended.result or decided.answer), "position": appended.last_position}
    raise AssertionError("unreachable")


async def _decide_in_turn(
    ctx: CommandContext, meta: CommandMeta, decide: Decide, stream: str, retry: bool
) -> tuple[Decided, Awaitable[records.AppendResult | None]] | dict[str, Any]:
    """Under the stream's lock: decide and submit. A decision on the read models holds the lock
    until its events are durable, so that the next decides on them folded. One that states the
    stream's state `after` lets the next decide on that at once: their appends are written in
    order, often in one commit, and one that fails makes those after it fail their version
    check and decide again on what the log holds."""
    async with ctx.streams.held(stream):
        decided = await decide()
        if not isinstance(decided, Decided):
            return decided
        settling = _settled(ctx, decided.stream, _submit(ctx, meta, decided), retry)
        if decided.after is None:
            return decided, _ready(await settling)
        version = decided.expected_version + len(decided.events)
        ctx.streams.remember(decided.stream, version, decided.after)
        return decided, settling


def _submit(
    ctx: CommandContext, meta: CommandMeta, decided: Decided
) -> Awaitable[records.AppendResult]:
    return ctx.store.submit(
        decided.stream,
        [ctx.catalogue.to_new_event(event) for event in decided.events],
        expected_version=decided.expected_version,
        idempotency_key=meta.idempotency_key,
        metadata=meta.metadata(),
        request_hash=meta.request_hash,
        result=decided.answer,
    )


async def _settled(
    ctx: CommandContext, stream: str, appending: Awaitable[records.AppendResult], retry: bool
) -> records.AppendResult | None:
    """The append's result; None for a version conflict to decide again on."""
    try:
        appended = await appending
    except store_errors.StoreError as exc:
        ctx.streams.forget(stream)
        if retry and isinstance(exc, store_errors.VersionConflictError):
            return None
        raise
    if appended.replayed:  # nothing appended: what was expected to be there is not
        ctx.streams.forget(stream)
    return appended


async def _ready(appended: records.AppendResult | None) -> records.AppendResult | None:
    return appended


def on_read_models(ctx: CommandContext, decide: Callable[[], Decision]) -> Decide:
    """`decide`, run on the read models once they have caught up with the log's head."""

    async def decided() -> Decision:
        await ctx.runner.current()  # never decide on stale state
        return decide()

    return decided


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
