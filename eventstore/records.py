"""The log's vocabulary: events to append, events as recorded, the answer to an append.

Plain frozen data; nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, NamedTuple

GENESIS_HASH = "0" * 64


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
# The C encoder `_CANONICAL.encode` builds afresh on every call, built once: a third of the
# cost of encoding an event. No circular-reference check (a shared one would keep stale ids
# after a failed call); what reaches the log is a pydantic dump, never circular.
_C_ENCODER = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        None, _CANONICAL.default, encode_basestring, None, ":", ",", True, False, False
    )
)


def canonical_json(value: Any) -> str:
    """The one JSON spelling the log stores and hashes: sorted keys, no spaces, no NaN."""
    if not value and isinstance(value, dict):
        return "{}"
    if _C_ENCODER is None or isinstance(value, str):
        return _CANONICAL.encode(value)
    return "".join(_C_ENCODER(value, 0))


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event a caller wants appended; the store gives it a position, version, time and hash."""

    type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)


class RecordedEvent(NamedTuple):
    """An event as the log holds it; `data_json` and `metadata_json` are the stored, hashed text.

    A named tuple: reads build hundreds of thousands of these, straight from database rows.
    """

    position: int
    stream_id: str
    version: int
    type: str
    schema_version: int
    data_json: str
    metadata_json: str
    recorded_at: str
    hash: str

    @property
    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data_json)
        return value

    @property
    def metadata(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.metadata_json)
        return value


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append did: the positions it wrote (or, for a repeated idempotency key, the
    positions the first append wrote), the stream's version after it, and the caller's result
    stored with the key. `replayed` is true when nothing was appended because the key was known."""

    positions: tuple[int, ...]
    stream_version: int
    result: Mapping[str, Any] | None = None
    replayed: bool = False

    @property
    def last_position(self) -> int:
        return self.positions[-1] if self.positions else 0


@dataclass(frozen=True, slots=True)
class StoredIdempotencyKey:
    key: str
    request_hash: str
    stream_id: str
    positions: tuple[int, ...]
    stream_version: int
    result: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A projection's state as of `position`, folded by `fold_version` of its fold."""

    name: str
    position: int
    fold_version: int
    state_json: str
