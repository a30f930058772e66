"""The hash chain's verifier, on records made by hand."""

from __future__ import annotations

from eventstore.chain import ChainVerifier, hash_of
from eventstore.records import GENESIS_HASH, RecordedEvent


def chain(length: int) -> list[RecordedEvent]:
    events, previous = [], GENESIS_HASH
    for position in range(1, length + 1):
        draft = RecordedEvent(position, "s", position, "E", 1, f'{{"p":{position}}}', "{}", "T", "")
        previous = hash_of(draft, previous)
        events.append(draft._replace(hash=previous))
    return events


def verify(events: list[RecordedEvent]) -> ChainVerifier:
    verifier = ChainVerifier()
    verifier.feed(events)
    return verifier


def test_an_intact_chain_verifies_and_reports_its_head() -> None:
    events = chain(5)
    report = verify(events).report()
    assert report.ok and report.checked == 5
    assert (report.head_position, report.head_hash) == (5, events[-1].hash)


def test_a_changed_field_is_caught_at_its_position() -> None:
    for field, value in [
        ("data_json", '{"p":9}'),
        ("metadata_json", '{"a":1}'),
        ("type", "F"),
        ("stream_id", "t"),
        ("recorded_at", "U"),
    ]:
        events = chain(4)
        events[2] = events[2]._replace(**{field: value})
        assert verify(events).report().first_bad_position == 3, field


def test_a_missing_event_is_caught_as_a_gap() -> None:
    events = chain(4)
    del events[1]
    assert verify(events).report().first_bad_position == 3


def test_a_recomputed_forgery_still_breaks_the_next_link() -> None:
    events = chain(4)
    forged = events[1]._replace(data_json='{"p":0}')
    events[1] = forged._replace(hash=hash_of(forged, events[0].hash))
    assert verify(events).report().first_bad_position == 3


def test_a_verifier_resumed_after_a_trusted_position_checks_only_what_follows() -> None:
    events = chain(6)
    verifier = ChainVerifier(after=3, after_hash=events[2].hash)
    verifier.feed(events[3:])
    report = verifier.report()
    assert report.ok and report.checked == 3 and report.head_position == 6

    wrong = ChainVerifier(after=3, after_hash=events[1].hash)
    wrong.feed(events[3:])
    assert wrong.report().first_bad_position == 4
