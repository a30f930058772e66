"""Group commit, the pure part: given the log's head, the streams' versions and the known
idempotency keys, decide for each queued append whether it conflicts, repeats or is written,
and build the rows. Each request gets its own version check; one failing does not fail others."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from eventstore.chain import event_hash
from eventstore.errors import IdempotencyConflictError, StoreError, VersionConflictError
from eventstore.records import AppendResult, NewEvent, StoredIdempotencyKey, canonical_json

# (position, stream_id, stream_version, type, schema_version, data, metadata, recorded_at, hash)
EventRow = tuple[int, str, int, str, int, str, str, str, str]
# (key, request_hash, stream_id, positions, stream_version, result, recorded_at)
KeyRow = tuple[str, str, str, str, int, str | None, str]
Outcome = AppendResult | StoreError


class EncodedEvent(NamedTuple):
    type: str
    schema_version: int
    data_json: str
    metadata_json: str


@dataclass(frozen=True, slots=True)
class AppendRequest:
    stream_id: str
    events: tuple[EncodedEvent, ...]
    expected_version: int | None
    idempotency_key: str | None = None
    request_hash: str | None = None
    result_json: str | None = None


def request_hash_of(stream_id: str, events: Sequence[EncodedEvent]) -> str:
    """Fingerprint of what an append asks for, used when the caller gives none."""
    body = canonical_json([stream_id, [[e.type, e.schema_version, e.data_json] for e in events]])
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(slots=True)
class BatchPlan:
    event_rows: list[EventRow] = field(default_factory=list)
    key_rows: list[KeyRow] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    head_position: int = 0
    head_hash: str = ""


def plan_batch(
    requests: Sequence[AppendRequest],
    head: tuple[int, str],
    versions: Mapping[str, int],
    known_keys: Mapping[str, StoredIdempotencyKey],
    recorded_at: str,
) -> BatchPlan:
    """Rows to insert and one outcome per request, in request order."""
    position, previous_hash = head
    current = dict(versions)
    keys = dict(known_keys)
    plan = BatchPlan()
    for request in requests:
        known = keys.get(request.idempotency_key) if request.idempotency_key else None
        if known is not None:
            plan.outcomes.append(_repeat(known, request))
            continue
        actual = current.get(request.stream_id, 0)
        if request.expected_version is not None and request.expected_version != actual:
            plan.outcomes.append(
                VersionConflictError(request.stream_id, request.expected_version, actual)
            )
            continue
        positions = []
        for offset, event in enumerate(request.events, start=1):
            position += 1
            version = actual + offset
            previous_hash = event_hash(
                previous_hash,
                position,
                request.stream_id,
                version,
                event.type,
                event.schema_version,
                recorded_at,
                event.data_json,
                event.metadata_json,
            )
            plan.event_rows.append(
                (
                    position,
                    request.stream_id,
                    version,
                    event.type,
                    event.schema_version,
                    event.data_json,
                    event.metadata_json,
                    recorded_at,
                    previous_hash,
                )
            )
            positions.append(position)
        current[request.stream_id] = actual + len(request.events)
        result = AppendResult(
            tuple(positions), current[request.stream_id], _loads(request.result_json)
        )
        plan.outcomes.append(result)
        if request.idempotency_key:
            stored = _remember(request, result)
            keys[request.idempotency_key] = stored
            plan.key_rows.append(
                (
                    stored.key,
                    stored.request_hash,
                    stored.stream_id,
                    canonical_json(positions),
                    stored.stream_version,
                    request.result_json,
                    recorded_at,
                )
            )
    plan.head_position, plan.head_hash = position, previous_hash
    return plan


def _repeat(known: StoredIdempotencyKey, request: AppendRequest) -> Outcome:
    if known.request_hash != _hash(request):
        return IdempotencyConflictError(known.key)
    return AppendResult(known.positions, known.stream_version, known.result, replayed=True)


def _remember(request: AppendRequest, result: AppendResult) -> StoredIdempotencyKey:
    assert request.idempotency_key is not None
    return StoredIdempotencyKey(
        key=request.idempotency_key,
        request_hash=_hash(request),
        stream_id=request.stream_id,
        positions=result.positions,
        stream_version=result.stream_version,
        result=result.result,
    )


def _hash(request: AppendRequest) -> str:
    return request.request_hash or request_hash_of(request.stream_id, request.events)


def _loads(result_json: str | None) -> Mapping[str, Any] | None:
    return None if result_json is None else json.loads(result_json)


def key_from_row(
    key: str, request_hash: str, stream_id: str, positions: str, version: int, result: str | None
) -> StoredIdempotencyKey:
    return StoredIdempotencyKey(
        key, request_hash, stream_id, tuple(json.loads(positions)), version, _loads(result)
    )


def encode_request(
    stream_id: str,
    events: Sequence[NewEvent],
    expected_version: int | None,
    idempotency_key: str | None,
    metadata: Mapping[str, Any] | None,
    request_hash: str | None,
    result: Mapping[str, Any] | None,
) -> AppendRequest:
    """An append as the writers take it: its events' data and metadata as canonical JSON."""
    shared = dict(metadata or {})
    if idempotency_key:
        shared["idempotency_key"] = idempotency_key
    shared_json = canonical_json(shared)
    encoded = tuple(
        EncodedEvent(
            event.type,
            event.schema_version,
            canonical_json(event.data if type(event.data) is dict else dict(event.data)),
            canonical_json({**shared, **event.metadata}) if event.metadata else shared_json,
        )
        for event in events
    )
    if not encoded:
        raise ValueError("an append needs at least one event")
    return AppendRequest(
        stream_id=stream_id,
        events=encoded,
        expected_version=expected_version,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        result_json=None if result is None else canonical_json(dict(result)),
    )
