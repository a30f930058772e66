"""The event log: append-only, hash-chained, on SQLite or PostgreSQL. Knows nothing of MCP."""

from eventstore.catalogue import Catalogue
from eventstore.chain import ChainReport
from eventstore.engines import create_engine
from eventstore.errors import (
    EventRejectedError,
    IdempotencyConflictError,
    StoreError,
    StoreUnavailableError,
    UnknownEventTypeError,
    VersionConflictError,
)
from eventstore.records import AppendResult, NewEvent, RecordedEvent, Snapshot
from eventstore.store import EventStore

__all__ = [
    "AppendResult",
    "Catalogue",
    "ChainReport",
    "EventRejectedError",
    "EventStore",
    "IdempotencyConflictError",
    "NewEvent",
    "RecordedEvent",
    "Snapshot",
    "StoreError",
    "StoreUnavailableError",
    "UnknownEventTypeError",
    "VersionConflictError",
    "create_engine",
]
