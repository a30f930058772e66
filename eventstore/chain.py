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
    """SHA-256 of the previous hash followed by every stored field as a netstring
    (`<length in characters>:<text>,`), UTF-8 encoded: no two events share the same bytes."""
    p, v, s = str(position), str(version), str(schema_version)
    text = (
        f"{previous_hash}{len(p)}:{p},{len(stream_id)}:{stream_id},{len(v)}:{v},"
        f"{len(type_name)}:{type_name},{len(s)}:{s},{len(recorded_at)}:{recorded_at},"
        f"{len(data_json)}:{data_json},{len(metadata_json)}:{metadata_json},"
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
    """Feeds events in position order; remembers the first that breaks the chain or a gap.

    By default the chain starts at its genesis; `after`/`after_hash` resume it after a position
    whose hash is already trusted (a signed checkpoint)."""

    def __init__(self, after: int = 0, after_hash: str = GENESIS_HASH) -> None:
        self.checked = 0
        self.head_position = after
        self.head_hash = after_hash
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
