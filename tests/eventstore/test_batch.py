"""The pure half of group commit: outcomes and rows for a batch of appends."""

from __future__ import annotations

from eventstore.batch import AppendRequest, EncodedEvent, plan_batch
from eventstore.chain import event_hash
from eventstore.errors import IdempotencyConflictError, VersionConflictError
from eventstore.records import GENESIS_HASH, AppendResult

AT = "2026-11-27T00:00:00.000000Z"


def request(stream: str, expected: int | None, key: str | None = None, n: int = 1) -> AppendRequest:
    events = tuple(EncodedEvent("E", 1, f'{{"i":{i}}}', "{}") for i in range(n))
    return AppendRequest(stream, events, expected, idempotency_key=key)


def test_each_request_is_checked_against_versions_including_earlier_ones_in_the_batch() -> None:
    plan = plan_batch(
        [request("a", 0), request("a", 0), request("a", 1), request("b", None, n=2)],
        head=(10, "f" * 64),
        versions={},
        known_keys={},
        recorded_at=AT,
    )

    ok1, conflict, ok2, ok3 = plan.outcomes
    assert isinstance(ok1, AppendResult) and ok1.positions == (11,)
    assert isinstance(conflict, VersionConflictError) and conflict.actual == 1
    assert isinstance(ok2, AppendResult) and ok2.positions == (12,) and ok2.stream_version == 2
    assert isinstance(ok3, AppendResult) and ok3.positions == (13, 14)
    assert [row[0] for row in plan.event_rows] == [11, 12, 13, 14]


def test_rows_chain_from_the_head_hash() -> None:
    plan = plan_batch([request("a", None, n=2)], (0, GENESIS_HASH), {}, {}, AT)

    first, second = plan.event_rows
    assert first[-1] == event_hash(GENESIS_HASH, 1, "a", 1, "E", 1, AT, '{"i":0}', "{}")
    assert second[-1] == event_hash(first[-1], 2, "a", 2, "E", 1, AT, '{"i":1}', "{}")
    assert (plan.head_position, plan.head_hash) == (2, second[-1])


def test_a_key_repeated_in_one_batch_is_written_once() -> None:
    plan = plan_batch(
        [request("a", None, key="k"), request("a", None, key="k")], (0, GENESIS_HASH), {}, {}, AT
    )

    first, repeat = plan.outcomes
    assert isinstance(repeat, AppendResult) and repeat.replayed
    assert isinstance(first, AppendResult) and repeat.positions == first.positions
    assert len(plan.event_rows) == 1 and len(plan.key_rows) == 1


def test_a_key_reused_for_another_request_is_refused() -> None:
    other = AppendRequest("b", (EncodedEvent("E", 1, "{}", "{}"),), None, idempotency_key="k")
    plan = plan_batch([request("a", None, key="k"), other], (0, GENESIS_HASH), {}, {}, AT)

    assert isinstance(plan.outcomes[1], IdempotencyConflictError)
    assert len(plan.event_rows) == 1
