"""The event catalogue: names, schema versions, upcasters, aliases."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from eventstore import Catalogue, UnknownEventTypeError
from eventstore.errors import SchemaVersionError
from eventstore.records import RecordedEvent


class PriceSet(BaseModel):
    amount_cents: int
    currency: str


def upcast_PriceSet_v1_to_v2(data: dict[str, object]) -> dict[str, object]:  # noqa: N802
    return {"amount_cents": int(float(str(data["amount"])) * 100), "currency": "EUR"}


def recorded(type_name: str, schema_version: int, data_json: str) -> RecordedEvent:
    return RecordedEvent(1, "s", 1, type_name, schema_version, data_json, "{}", "T", "h")


def catalogue() -> Catalogue:
    registry = Catalogue()
    registry.register(
        PriceSet,
        schema_version=2,
        upcasters={1: upcast_PriceSet_v1_to_v2},
        aliases=["PriceChanged"],
    )
    return registry


def test_encodes_a_model_under_its_class_name_and_current_schema_version() -> None:
    new = catalogue().to_new_event(PriceSet(amount_cents=5, currency="USD"), {"actor": "a"})
    assert (new.type, new.schema_version, dict(new.data)) == (
        "PriceSet",
        2,
        {"amount_cents": 5, "currency": "USD"},
    )


def test_decodes_old_schema_versions_through_upcasters_and_old_names_through_aliases() -> None:
    decoded = catalogue().decode(recorded("PriceChanged", 1, '{"amount":"1.5"}'))
    assert decoded == PriceSet(amount_cents=150, currency="EUR")


def test_refuses_unknown_types_and_missing_upcasters() -> None:
    with pytest.raises(UnknownEventTypeError):
        catalogue().decode(recorded("Nope", 1, "{}"))
    with pytest.raises(ValueError, match="upcaster"):
        Catalogue().register(PriceSet, schema_version=3, upcasters={1: upcast_PriceSet_v1_to_v2})


def test_an_event_of_a_newer_schema_version_than_registered_is_refused_not_misread() -> None:
    with pytest.raises(SchemaVersionError) as caught:
        catalogue().decode(recorded("PriceSet", 3, '{"amount_cents": 1, "currency": "EUR"}'))
    assert (caught.value.stored, caught.value.known) == (3, 2)
