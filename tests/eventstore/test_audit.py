"""Signed checkpoints and the audit over a real log, on a SQLite file and on PostgreSQL: what
the checkpointer signs, and what the audit names when the log or a checkpoint was tampered."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from nacl.signing import SigningKey

import migrations
from eventstore import audit, schema, signing
from eventstore.audit import Checkpointer, KnownHead
from eventstore.chain import hash_of
from eventstore.engines import create_engine
from eventstore.records import NewEvent
from eventstore.signing import Signer
from eventstore.store import EventStore

EVERY = 3


@pytest.fixture
def signer() -> Signer:
    return Signer(SigningKey.generate())


@pytest.fixture
def trusted(signer: Signer) -> dict[str, signing.VerifyKey]:
    return signing.trusted_keys([signer.verify_key])


async def append(store: EventStore, count: int) -> None:
    for n in range(count):
        await store.append(f"s-{n % 2}", [NewEvent("Happened", {"n": n})], None)


async def execute(store: EventStore, statement: sa.Executable) -> int:
    async with store.engine.begin() as connection:
        return (await connection.execute(statement)).rowcount


async def signed(store: EventStore, signer: Signer, count: int = 10) -> Checkpointer:
    """`count` events, signed at every multiple of EVERY."""
    await append(store, count)
    checkpointer = Checkpointer(store, signer, EVERY)
    await checkpointer.sign_due()
    return checkpointer


# -- signing -----------------------------------------------------------------------------------


async def test_signs_the_chains_hash_at_every_multiple_once(
    store: EventStore, signer: Signer
) -> None:
    await append(store, 10)
    checkpointer = Checkpointer(store, signer, EVERY)

    made = await checkpointer.sign_due()
    again = await checkpointer.sign_due()

    assert [c.position for c in made] == [3, 6, 9]
    assert again == []
    hashes = {e.position: e.hash for e in await store.read_all(0, 100)}
    assert all(c.head_hash == hashes[c.position] for c in made)
    assert await audit.load_checkpoints(store.engine) == made


async def test_signs_the_head_on_demand_once(store: EventStore, signer: Signer) -> None:
    checkpointer = await signed(store, signer)

    head = await checkpointer.sign_head()

    assert (head.position, head.head_hash) == await store.head()
    assert await checkpointer.sign_head() == head
    assert [c.position for c in await audit.load_checkpoints(store.engine)] == [3, 6, 9, 10]


async def test_refuses_to_sign_a_broken_chain(store: EventStore, signer: Signer) -> None:
    await append(store, 5)
    await execute(
        store, schema.events.update().where(schema.events.c.position == 2).values(data='{"n":9}')
    )

    with pytest.raises(audit.ChainBrokenError) as caught:
        await Checkpointer(store, signer, EVERY).sign_due()

    assert caught.value.position == 2
    assert await audit.load_checkpoints(store.engine) == []


async def test_an_empty_log_has_no_head_to_sign(store: EventStore, signer: Signer) -> None:
    with pytest.raises(audit.EmptyLogError):
        await Checkpointer(store, signer, EVERY).sign_head()


async def test_an_edited_checkpoint_is_no_anchor_for_the_next(
    store: EventStore, signer: Signer, trusted: dict[str, signing.VerifyKey]
) -> None:
    checkpointer = await signed(store, signer, count=7)
    t = schema.signed_checkpoints
    await execute(store, t.update().where(t.c.position == 6).values(head_hash="0" * 64))
    await append(store, 2)

    [made] = await checkpointer.sign_due()

    assert made.position == 9 and made.head_hash == (await store.head())[1]
    assert (await audit.audit(store, trusted)).checkpoints.first_bad_checkpoint == 6


async def test_a_second_signer_of_a_signed_position_gets_the_stored_checkpoint(
    store: EventStore, signer: Signer
) -> None:
    await append(store, 3)
    first = await Checkpointer(store, signer, EVERY).sign_at(3, None)

    second = await Checkpointer(store, Signer(SigningKey.generate()), EVERY).sign_at(3, None)

    assert second == first


# -- the audit ---------------------------------------------------------------------------------


async def test_an_untouched_log_passes_with_every_checkpoint(
    store: EventStore, signer: Signer, trusted: dict[str, signing.VerifyKey]
) -> None:
    await signed(store, signer)

    report = await audit.audit(store, trusted)

    assert report.ok and report.chain.checked == 10
    assert report.checkpoints == audit.CheckpointReport(checked=3, last_verified_position=9)


async def test_a_changed_event_is_named_and_the_checkpoints_below_it_still_vouch(
    store: EventStore, signer: Signer, trusted: dict[str, signing.VerifyKey]
) -> None:
    await signed(store, signer)
    await execute(
        store, schema.events.update().where(schema.events.c.position == 5).values(data='{"n":99}')
    )

    report = await audit.audit(store, trusted)

    assert not report.ok
    assert report.chain.first_bad_position == 5
    assert report.checkpoints.last_verified_position == 3


async def test_a_rewritten_log_with_recomputed_hashes_fails_its_checkpoint(
    store: EventStore, signer: Signer, trusted: dict[str, signing.VerifyKey]
) -> None:
    await signed(store, signer)
    await rewrite_from(store, 5, '{"n":99}')

    report = await audit.audit(store, trusted)

    assert report.chain.ok  # self-consistent: only the signature gives it away
    assert not report.ok
    assert report.checkpoints.first_bad_checkpoint == 6
    assert report.checkpoints.last_verified_position == 3
    assert "differs" in (report.checkpoints.problem or "")


async def test_a_tampered_checkpoint_is_named(
    store: EventStore, signer: Signer, trusted: dict[str, signing.VerifyKey]
) -> None:
    await signed(store, signer)
    t = schema.signed_checkpoints
    await execute(
        store, t.update().where(t.c.position == 6).values(signed_at="2000-01-01T00:00:00.000000Z")
    )

    report = await audit.audit(store, trusted)

    assert not report.ok and report.chain.ok
    assert report.checkpoints.first_bad_checkpoint == 6
    assert report.checkpoints.last_verified_position == 3
    assert "signature" in (report.checkpoints.problem or "")


async def test_a_checkpoint_forged_with_another_key_is_rejected(
    store: EventStore, signer: Signer, trusted: dict[str, signing.VerifyKey]
) -> None:
    await signed(store, signer)
    await rewrite_from(store, 8, '{"n":99}')
    forged = Signer(SigningKey.generate()).sign(
        9, (await store.head())[1], "2030-01-01T00:00:00.000000Z"
    )
    t = schema.signed_checkpoints
    await execute(store, t.delete().where(t.c.position == 9))
    await audit.save_checkpoint(store.engine, forged)

    report = await audit.audit(store, trusted)

    assert not report.ok and report.chain.ok
    assert report.checkpoints.first_bad_checkpoint == 9
    assert "not a trusted key" in (report.checkpoints.problem or "")


async def test_a_truncated_copy_fails_the_known_head_and_the_checkpoints_past_its_end(
    store: EventStore, signer: Signer, trusted: dict[str, signing.VerifyKey]
) -> None:
    await signed(store, signer)
    known = KnownHead(*await store.head())
    await execute(store, schema.events.delete().where(schema.events.c.position > 7))

    report = await audit.audit(store, trusted, [known])

    assert report.chain.ok and report.chain.head_position == 7
    assert not report.ok
    [head] = report.known_heads
    assert head.problem == "the log ends at position 7, before position 10"
    assert report.checkpoints.first_bad_checkpoint == 9


async def test_a_truncated_copy_with_its_checkpoints_deleted_is_caught_only_by_the_known_head(
    store: EventStore, signer: Signer, trusted: dict[str, signing.VerifyKey]
) -> None:
    await signed(store, signer)
    known = KnownHead(*await store.head())
    await execute(store, schema.events.delete().where(schema.events.c.position > 7))
    t = schema.signed_checkpoints
    await execute(store, t.delete().where(t.c.position > 7))

    assert (await audit.audit(store, trusted)).ok
    assert not (await audit.audit(store, trusted, [known])).ok


async def test_a_known_head_that_matches_passes(
    store: EventStore, signer: Signer, trusted: dict[str, signing.VerifyKey]
) -> None:
    await signed(store, signer)
    events = await store.read_all(0, 100)

    report = await audit.audit(store, trusted, [KnownHead(4, events[3].hash)])

    assert report.ok and report.known_heads[0].ok


def test_reads_a_known_head_as_position_and_hash() -> None:
    assert KnownHead.parse("12:" + "AB" * 32) == KnownHead(12, "ab" * 32)
    for bad in ("12", "x:" + "ab" * 32, "12:abc", "12:" + "zz" * 32):
        with pytest.raises(ValueError):
            KnownHead.parse(bad)


async def test_a_database_from_before_the_checkpoints_table_has_none(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        await migrations.upgrade(engine, "0002")
        assert await audit.load_checkpoints(engine) == []
    finally:
        await engine.dispose()


async def rewrite_from(store: EventStore, position: int, data: str) -> None:
    """Change one event's data and recompute every hash from there: a self-consistent forgery."""
    events = await store.read_all(0, 1000)
    previous = events[position - 2].hash if position > 1 else "0" * 64
    for event in events[position - 1 :]:
        changed = event._replace(data_json=data) if event.position == position else event
        previous = hash_of(changed, previous)
        await execute(
            store,
            schema.events.update()
            .where(schema.events.c.position == event.position)
            .values(data=changed.data_json, hash=previous),
        )
