"""The hash chain: each event's hash covers the previous hash and the event's stored bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from eventstore.records import GENESIS_HASH, RecordedEvent


def event_hash(
    previous_hash: str,
    position: int,
    stream_id: str,
    version: int,
    type_name: str,
    schema_version: int,
    recorded_at: str,
    data_json: str,
    metadata_json: str,
) -> str:
    """SHA-256 over the previous hash and a length-prefixed encoding of every stored field."""
    parts = [previous_hash.encode("ascii")]
    for field in (
        str(position),
        stream_id,
        str(version),
        type_name,
        str(schema_version),
        recorded_at,
        data_json,
        metadata_json,
    ):
        raw = field.encode("utf-8")
        parts.append(len(raw).to_bytes(4, "big"))
        parts.append(raw)
    return hashlib.sha256(b"".join(parts)).hexdigest()


def hash_of(event: RecordedEvent, previous_hash: str) -> str:
    return event_hash(
        previous_hash,
        event.position,
        event.stream_id,
        event.version,
        event.type,
        event.schema_version,
        event.recorded_at,
        event.data_json,
        event.metadata_json,
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    head_position: int
    head_hash: str
    first_bad_position: int | None = None


class ChainVerifier:
    """Feeds events in position order; remembers the first that breaks the chain or a gap."""

    def __init__(self) -> None:
        self.checked = 0
        self.head_position = 0
        self.head_hash = GENESIS_HASH
        self.first_bad_position: int | None = None

    def feed(self, events: Iterable[RecordedEvent]) -> None:
        for event in events:
            self.checked += 1
            dense = event.position == self.head_position + 1
            if self.first_bad_position is None and (
                not dense or hash_of(event, self.head_hash) != event.hash
            ):
                self.first_bad_position = event.position
            self.head_position = event.position
            self.head_hash = event.hash

    def report(self) -> ChainReport:
        return ChainReport(
            ok=self.first_bad_position is None,
            checked=self.checked,
            head_position=self.head_position,
            head_hash=self.head_hash,
            first_bad_position=self.first_bad_position,
        )
