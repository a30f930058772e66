"""Nothing is appended that cannot be read back, and a refused append fails alone: the same
tests on a SQLite file and on PostgreSQL, which must accept and refuse the same things."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from eventstore import Catalogue, EventStore, NewEvent
from eventstore.errors import EventRejectedError
from tests.support.databases import open_migrated_store

SURROGATE = "\ud800"


class NoteTaken(BaseModel):
    text: str
    tags: dict[str, Any] = {}


def note(text: str = "fine", **tags: Any) -> NewEvent:
    return NewEvent(type="NoteTaken", data={"text": text, "tags": tags})


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
async def checked(database_url: str, store: EventStore) -> AsyncIterator[EventStore]:
    """A store that decodes every event through a catalogue before appending it."""
    catalogue = Catalogue()
    catalogue.register(NoteTaken)
    opened = await open_migrated_store(database_url, catalogue=catalogue)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.mark.parametrize(
    ("stream", "event", "field"),
    [
        ("notes-" + SURROGATE, note(), "stream_id"),
        ("notes-\x00", note(), "stream_id"),
        ("n" * 201, note(), "stream_id"),
        ("", note(), "stream_id"),
        ("notes-1", NewEvent(type="Note" + SURROGATE, data={}), "type"),
        ("notes-1", NewEvent(type="Note\x00", data={}), "type"),
        ("notes-1", NewEvent(type="T" * 201, data={}), "type"),
        ("notes-1", note("bad " + SURROGATE), "data.text"),
        ("notes-1", note(deep={"list": ["ok", SURROGATE]}), "data.tags.deep.list.1"),
        ("notes-1", note(**{"key" + SURROGATE: 1}), "data.tags"),
        (
            "notes-1",
            NewEvent("NoteTaken", {"text": "x"}, metadata={"who": SURROGATE}),
            "metadata.who",
        ),
    ],
)
async def test_refuses_what_either_database_cannot_store_naming_the_field(
    store: EventStore, stream: str, event: NewEvent, field: str
) -> None:
    with pytest.raises(EventRejectedError) as caught:
        await store.append(stream, [event], expected_version=None)
    assert caught.value.field == field
    assert await store.head() == (0, "0" * 64)


async def test_a_nul_inside_event_data_is_stored_escaped_and_reads_back_exactly(
    store: EventStore,
) -> None:
    await store.append("notes-1", [note("a\x00b")], expected_version=0)
    [recorded] = await store.read_all()
    assert "\\u0000" in recorded.data_json
    assert recorded.data["text"] == "a\x00b"


async def test_refuses_an_idempotency_key_that_does_not_fit_its_column(store: EventStore) -> None:
    with pytest.raises(EventRejectedError) as caught:
        await store.append("notes-1", [note()], expected_version=0, idempotency_key="k" * 201)
    assert caught.value.field == "idempotency_key"
    assert await store.head() == (0, "0" * 64)


async def test_refuses_an_event_its_catalogue_would_not_decode_when_read_back(
    checked: EventStore,
) -> None:
    # Python's json takes this nesting; pydantic's JSON reader, which readers use, does not
    too_deep = note(deep=nested(300))
    cases = [
        (too_deep, "data"),
        (NewEvent(type="NoteTaken", data={"text": 7}), "data.text"),
        (NewEvent(type="NoteTaken", data={"text": "x"}, schema_version=2), "type"),
        (NewEvent(type="Unheard", data={}), "type"),
    ]
    for event, field in cases:
        with pytest.raises(EventRejectedError) as caught:
            await checked.append("notes-1", [event], expected_version=None)
        assert caught.value.field == field, event
    assert await checked.head() == (0, "0" * 64)
    appended = await checked.append("notes-1", [note(deep=nested(100))], expected_version=0)
    [read_back] = await checked.read_all()
    assert checked.catalogue is not None
    assert checked.catalogue.decode(read_back) == NoteTaken(text="fine", tags={"deep": nested(100)})
    assert appended.positions == (1,)


async def test_one_unstorable_append_among_concurrent_good_ones_fails_alone(
    checked: EventStore,
) -> None:
    good = [checked.append(f"notes-{n}", [note(f"good {n}")], expected_version=0) for n in range(5)]
    bad = [
        checked.append("notes-bad", [note("bad " + SURROGATE)], expected_version=0),
        checked.append("notes-nul\x00", [note()], expected_version=0),
        checked.append("notes-deep", [note(deep=nested(300))], expected_version=0),
    ]
    outcomes = await asyncio.gather(*good[:2], *bad, *good[2:], return_exceptions=True)

    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 3 and all(isinstance(o, EventRejectedError) for o in refused)
    stored = await checked.read_all()
    assert [e.position for e in stored] == [1, 2, 3, 4, 5]
    assert sorted(json.loads(e.data_json)["text"] for e in stored) == [
        f"good {n}" for n in range(5)
    ]
    assert (await checked.verify_chain()).ok
