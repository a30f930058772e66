"""Type name -> (pydantic model, schema version, upcasters). Stored names never name modules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from eventstore.errors import SchemaVersionError, UnknownEventTypeError
from eventstore.records import NewEvent, RecordedEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Entry:
    type_name: str
    model: type[BaseModel]
    schema_version: int
    # upcasters[v] turns data of schema version v into version v + 1.
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict)


class Catalogue:
    """Registry of event models; encodes models to NewEvents and decodes stored events."""

    def __init__(self) -> None:
        self._by_name: dict[str, Entry] = {}
        self._by_model: dict[type[BaseModel], Entry] = {}
        # (stored name, schema version) -> the model's JSON validator, for events stored in
        # the current version: a replay decodes hundreds of thousands of them
        self._current: dict[tuple[str, int], Callable[[str], Any]] = {}

    def register(
        self,
        model: type[BaseModel],
        *,
        schema_version: int = 1,
        upcasters: Mapping[int, Upcaster] | None = None,
        aliases: Iterable[str] = (),
        type_name: str | None = None,
    ) -> None:
        """Register `model` under its class name (or `type_name`) and any former names."""
        name = type_name or model.__name__
        missing = [v for v in range(1, schema_version) if v not in (upcasters or {})]
        if missing:
            raise ValueError(f"{name}: no upcaster from schema version(s) {missing}")
        entry = Entry(name, model, schema_version, dict(upcasters or {}))
        for key in (name, *aliases):
            if key in self._by_name:
                raise ValueError(f"event type {key!r} registered twice")
            self._by_name[key] = entry
            self._current[key, schema_version] = model.__pydantic_validator__.validate_json
        self._by_model[model] = entry

    def entry(self, type_name: str) -> Entry:
        try:
            return self._by_name[type_name]
        except KeyError:
            raise UnknownEventTypeError(type_name) from None

    def names(self) -> list[str]:
        return sorted({entry.type_name for entry in self._by_name.values()})

    def to_new_event(self, event: BaseModel, metadata: Mapping[str, Any] | None = None) -> NewEvent:
        entry = self._by_model[type(event)]
        return NewEvent(
            type=entry.type_name,
            data=event.model_dump(mode="json"),
            schema_version=entry.schema_version,
            metadata=dict(metadata or {}),
        )

    def decode(self, recorded: RecordedEvent) -> BaseModel:
        """The stored event as its current model, upcast from older schema versions.

        Raises UnknownEventTypeError, SchemaVersionError (written by a newer release) and
        pydantic's ValidationError (data the model refuses)."""
        validate = self._current.get((recorded.type, recorded.schema_version))
        if validate is not None:
            return validate(recorded.data_json)  # type: ignore[no-any-return]
        entry = self.entry(recorded.type)
        if recorded.schema_version > entry.schema_version:
            raise SchemaVersionError(recorded.type, recorded.schema_version, entry.schema_version)
        data: dict[str, Any] = json.loads(recorded.data_json)
        for version in range(recorded.schema_version, entry.schema_version):
            data = entry.upcasters[version](data)
        return entry.model.model_validate(data)
