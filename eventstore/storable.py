"""What the log can store and read back, checked before an append is queued.

The log is append-only and chained: an event no reader can decode could never be removed
cleanly. So every append is refused here, alone, unless both databases store it alike and
the catalogue decodes it exactly as a reader will.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from eventstore.batch import AppendRequest, EncodedEvent
from eventstore.catalogue import Catalogue
from eventstore.errors import EventRejectedError, StoreError
from eventstore.records import RecordedEvent

# The schema's String(200) columns: stream_id, type and the idempotency key. PostgreSQL
# refuses a longer value, SQLite would keep it: both refuse it here.
MAX_NAME_LENGTH = 200
MAX_SCHEMA_VERSION = 2**31 - 1  # an INTEGER column on both databases
LONE_SURROGATE = "is not valid Unicode: it holds a lone surrogate, which UTF-8 cannot store"


def check(request: AppendRequest, catalogue: Catalogue | None) -> None:
    """Raise EventRejectedError, naming the field, unless every part of `request` is storable
    text and (given a catalogue) every event decodes through it."""
    _name(request.stream_id, "stream_id")
    if request.idempotency_key is not None:
        _name(request.idempotency_key, "idempotency_key")
    if request.result_json is not None:
        _json_text(request.result_json, "result")
    for event in request.events:
        _event(request.stream_id, event, catalogue)


def _event(stream_id: str, event: EncodedEvent, catalogue: Catalogue | None) -> None:
    _name(event.type, "type")
    if not 1 <= event.schema_version <= MAX_SCHEMA_VERSION:
        raise EventRejectedError(
            f"must be between 1 and {MAX_SCHEMA_VERSION}", field="schema_version"
        )
    _json_text(event.data_json, "data")
    _json_text(event.metadata_json, "metadata")
    if catalogue is not None:
        _decodes(catalogue, RecordedEvent(0, stream_id, 0, *event, "", ""))


def _name(value: str, field: str) -> None:
    if not value:
        raise EventRejectedError("must not be empty", field=field)
    if len(value) > MAX_NAME_LENGTH:
        raise EventRejectedError(f"is longer than {MAX_NAME_LENGTH} characters", field=field)
    if "\x00" in value:
        raise EventRejectedError("contains a NUL character", field=field)
    if not _encodes(value):
        raise EventRejectedError(LONE_SURROGATE, field=field)


def _json_text(text: str, field: str) -> None:
    """JSON text as canonical_json writes it: control characters (NUL too) are escaped, so
    only a lone surrogate can make it unstorable; name the string that holds one."""
    if not _encodes(text):
        raise EventRejectedError(LONE_SURROGATE, field=_surrogate_path(json.loads(text), field))


def _surrogate_path(value: Any, path: str) -> str:
    """The path of the first string (value or key) below `value` that UTF-8 cannot encode."""
    pending: list[tuple[Any, str]] = [(value, path)]
    while pending:
        item, at = pending.pop()
        if isinstance(item, str) and not _encodes(item):
            return at
        if isinstance(item, dict):
            for key, child in item.items():
                if not _encodes(key):
                    return at
                pending.append((child, f"{at}.{key}"))
        elif isinstance(item, list):
            pending.extend((child, f"{at}.{index}") for index, child in enumerate(item))
    return path


def _encodes(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decodes(catalogue: Catalogue, recorded: RecordedEvent) -> None:
    try:
        catalogue.decode(recorded)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        path = ".".join(["data", *(str(part) for part in first["loc"])])
        raise EventRejectedError(
            f"would not decode when read back: {first['msg']}", field=path
        ) from None
    except StoreError as exc:  # unknown type, or a schema version this catalogue lacks
        raise EventRejectedError(str(exc), field="type") from None
    except Exception as exc:  # noqa: BLE001 - an upcaster's bug must refuse the event, not 500
        raise EventRejectedError(
            f"would not decode when read back: {type(exc).__name__}", field="data"
        ) from None
