"""The auditor's checks over a log, and the signed checkpoints that let a copy be checked.

- `audit(store, trusted, known)` reads the whole log once: the hash chain (the first bad
  position), every signed checkpoint (its signature under a trusted key, and the log's hash at
  its position equal to the signed one), and heads the auditor knows from elsewhere (a
  truncated or rewritten copy fails them). It only reads.
- `Checkpointer` signs the chain's hash at every multiple of N, and on demand at the head,
  after checking the links since the checkpoint before: it never vouches for a broken chain.

Knows nothing of MCP. Raises StoreUnavailableError; the checkpointer ChainBrokenError and
EmptyLogError too.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from nacl.signing import VerifyKey
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import schema
from eventstore.chain import ChainReport, ChainVerifier
from eventstore.errors import StoreError
from eventstore.records import GENESIS_HASH
from eventstore.signing import SignedCheckpoint, Signer, signature_problem, trusted_keys
from eventstore.store import EventStore, _translated
from eventstore.times import format_time

PAGE = 5_000
CHECKPOINTS = schema.signed_checkpoints
HASH_DIGITS = 64
# A known head as text: POSITION:HASH (also a JSON Schema pattern, hence [0-9] and not \d)
KNOWN_HEAD_PATTERN = f"^[0-9]+:[0-9a-fA-F]{{{HASH_DIGITS}}}$"


class ChainBrokenError(StoreError):
    """The chain does not verify up to the position to be signed: nothing is signed."""

    def __init__(self, position: int) -> None:
        super().__init__(f"the hash chain is broken at position {position}; not signing it")
        self.position = position


class EmptyLogError(StoreError):
    """There is no event yet: no head to sign."""

    def __init__(self) -> None:
        super().__init__("the log is empty: there is no head to sign")


@dataclass(frozen=True, slots=True)
class KnownHead:
    """A position and the chain's hash there, as the auditor knows them from elsewhere."""

    position: int
    head_hash: str

    @classmethod
    def parse(cls, text: str) -> KnownHead:
        """`POSITION:HASH`. Raises ValueError."""
        position, _, head_hash = text.partition(":")
        head_hash = head_hash.strip().lower()
        if not position.strip().isdigit() or len(head_hash) != HASH_DIGITS:
            raise ValueError("a known head is POSITION:HASH (64 hex digits)")
        int(head_hash, 16)
        return cls(int(position), head_hash)


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    """`last_verified_position`: the highest checkpoint below every failure (of a checkpoint or
    of the chain): the log up to it is exactly the log that was signed."""

    checked: int = 0
    last_verified_position: int = 0
    first_bad_checkpoint: int | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class KnownHeadReport:
    position: int
    head_hash: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True, slots=True)
class AuditReport:
    chain: ChainReport
    checkpoints: CheckpointReport
    known_heads: tuple[KnownHeadReport, ...] = ()

    @property
    def ok(self) -> bool:
        return (
            self.chain.ok
            and self.checkpoints.first_bad_checkpoint is None
            and all(head.ok for head in self.known_heads)
        )


async def audit(
    store: EventStore, trusted: Mapping[str, VerifyKey], known: Sequence[KnownHead] = ()
) -> AuditReport:
    """Check the chain, every stored checkpoint under the `trusted` keys (by key id), and the
    `known` heads, in one pass over the log."""
    checkpoints = await load_checkpoints(store.engine)
    wanted = {c.position for c in checkpoints} | {k.position for k in known}
    verifier = ChainVerifier()
    hashes: dict[int, str] = {}
    position = 0
    while page := await store.read_all(position, PAGE):
        verifier.feed(page)
        hashes.update((e.position, e.hash) for e in page if e.position in wanted)
        position = page[-1].position
    chain = verifier.report()
    return AuditReport(
        chain,
        check_checkpoints(checkpoints, hashes, trusted, chain),
        tuple(check_known_head(head, hashes, chain) for head in known),
    )


def check_checkpoints(
    checkpoints: Sequence[SignedCheckpoint],
    hashes: Mapping[int, str],
    trusted: Mapping[str, VerifyKey],
    chain: ChainReport,
) -> CheckpointReport:
    """Each checkpoint (in position order) against the log's hashes at their positions. Pure."""
    first_bad: tuple[int, str] | None = None
    last_verified = 0
    for checkpoint in checkpoints:
        problem = signature_problem(checkpoint, trusted) or _hash_problem(
            checkpoint.position, checkpoint.head_hash, hashes, chain
        )
        if problem is not None and first_bad is None:
            first_bad = (checkpoint.position, problem)
        below_break = chain.first_bad_position is None or (
            checkpoint.position < chain.first_bad_position
        )
        if problem is None and first_bad is None and below_break:
            last_verified = checkpoint.position
    return CheckpointReport(
        checked=len(checkpoints),
        last_verified_position=last_verified,
        first_bad_checkpoint=first_bad[0] if first_bad else None,
        problem=first_bad[1] if first_bad else None,
    )


def check_known_head(
    head: KnownHead, hashes: Mapping[int, str], chain: ChainReport
) -> KnownHeadReport:
    problem = _hash_problem(head.position, head.head_hash, hashes, chain)
    return KnownHeadReport(head.position, head.head_hash, problem)


def _hash_problem(
    position: int, expected: str, hashes: Mapping[int, str], chain: ChainReport
) -> str | None:
    if position == 0:
        return None if expected == GENESIS_HASH else "the hash at position 0 is the genesis hash"
    if position > chain.head_position:
        return f"the log ends at position {chain.head_position}, before position {position}"
    found = hashes.get(position)
    if found is None:
        return f"the log has no event at position {position}"
    if found != expected:
        return f"the log's hash at position {position} differs from the known one"
    return None


# -- the checkpoints table -------------------------------------------------------------------


async def load_checkpoints(engine: AsyncEngine) -> list[SignedCheckpoint]:
    """Every stored checkpoint in position order; none on a database from before the table."""
    query = _select_checkpoints().order_by(CHECKPOINTS.c.position)
    with _translated():
        async with engine.connect() as connection:
            if not await connection.run_sync(_has_checkpoints_table):
                return []
            return [SignedCheckpoint(*row) for row in (await connection.execute(query)).all()]


def _has_checkpoints_table(connection: sa.Connection) -> bool:
    return sa.inspect(connection).has_table(CHECKPOINTS.name)


async def save_checkpoint(engine: AsyncEngine, checkpoint: SignedCheckpoint) -> SignedCheckpoint:
    """Store the checkpoint unless one is already stored at its position; returns the stored one
    (another process may have signed the same position first)."""
    insert = sqlite_insert if engine.dialect.name == "sqlite" else postgres_insert
    statement = (
        insert(CHECKPOINTS)
        .values(**asdict(checkpoint))
        .on_conflict_do_nothing(index_elements=[CHECKPOINTS.c.position])
    )
    with _translated():
        async with engine.begin() as connection:
            await connection.execute(statement)
            row = (
                await connection.execute(
                    _select_checkpoints().where(CHECKPOINTS.c.position == checkpoint.position)
                )
            ).one()
    return SignedCheckpoint(*row)


def _select_checkpoints() -> sa.Select[Any]:
    t = CHECKPOINTS.c
    return sa.select(t.position, t.head_hash, t.signed_at, t.key_id, t.public_key, t.signature)


# -- signing ---------------------------------------------------------------------------------


class Checkpointer:
    """Signs the chain at every multiple of `every` (and at the head, on demand)."""

    def __init__(self, store: EventStore, signer: Signer, every: int) -> None:
        if every <= 0:
            raise ValueError("checkpoints are signed every N > 0 events")
        self._store = store
        self._signer = signer
        self._own_key = trusted_keys([signer.verify_key])
        self.every = every

    async def sign_due(self) -> list[SignedCheckpoint]:
        """Sign every multiple of `every` up to the head that has no checkpoint yet.

        Raises:
            ChainBrokenError: the links before a due position do not verify.
        """
        head, _ = await self._store.head()
        stored = await load_checkpoints(self._store.engine)
        signed = {c.position: c for c in stored}
        positions = sorted(signed)
        made = []
        for target in range(self.every, head + 1, self.every):
            if target in signed:
                continue
            index = bisect.bisect_left(positions, target)  # the checkpoints below come first
            anchor = signed[positions[index - 1]] if index else None
            checkpoint = await self.sign_at(target, anchor)
            signed[target] = checkpoint
            bisect.insort(positions, target)
            made.append(checkpoint)
        return made

    async def sign_head(self) -> SignedCheckpoint:
        """Sign the chain at the current head. Raises EmptyLogError, ChainBrokenError."""
        head, _ = await self._store.head()
        if head == 0:
            raise EmptyLogError
        earlier = [c for c in await load_checkpoints(self._store.engine) if c.position <= head]
        if earlier and earlier[-1].position == head:
            return earlier[-1]
        return await self.sign_at(head, earlier[-1] if earlier else None)

    async def sign_at(self, target: int, anchor: SignedCheckpoint | None) -> SignedCheckpoint:
        """Check the links from `anchor` (or the genesis) up to `target`, then sign `target`.
        An anchor this key did not sign (an edited row) is not trusted: the walk starts at 0."""
        if anchor is not None and signature_problem(anchor, self._own_key) is not None:
            anchor = None
        after = anchor.position if anchor else 0
        verifier = ChainVerifier(after, anchor.head_hash if anchor else GENESIS_HASH)
        while verifier.head_position < target:
            page = await self._store.read_all(
                verifier.head_position, min(PAGE, target - verifier.head_position)
            )
            if not page:
                raise ChainBrokenError(verifier.head_position + 1)
            verifier.feed(page)
        report = verifier.report()
        if report.first_bad_position is not None:
            raise ChainBrokenError(report.first_bad_position)
        signed_at = format_time(datetime.now(UTC))
        checkpoint = self._signer.sign(target, report.head_hash, signed_at)
        return await save_checkpoint(self._store.engine, checkpoint)
