"""Data keys for field encryption, wrapped by the master key in the `data_keys` table.

Each secret gets its own data key (a 32-byte SecretBox key); events carry only ciphertext.
Destroying a data key forgets everything it encrypted ("crypto-shredding"): its row keeps the id
and the times, `wrapped` becomes NULL, and the old bytes are erased from the database's files
too. SQLite: every write to this table runs with `secure_delete`, so freed space is zeroed, and a
destroy ends with `wal_checkpoint(TRUNCATE)`, so no older copy of the page stays in the WAL.
PostgreSQL: `VACUUM FULL data_keys` rewrites the table into a new file and truncates the old one
(a plain VACUUM leaves the old page on disk until a checkpoint, and may leave freed bytes in it).
PostgreSQL's own WAL keeps old records until it recycles them; that is outside our reach.

Guarantees:
- Every live row is wrapped by the same master key, whose fingerprint is stored beside it.
  Writes hold the table's write lock (SQLite `BEGIN IMMEDIATE`; PostgreSQL `SHARE ROW
  EXCLUSIVE`), and a ring whose master is not the database's refuses to write with it: it
  re-reads the key file (another process rotated) and tries once more.
- On SQLite these writes and the store's writer thread wait for each other (busy_timeout), one
  transaction at a time; neither fails because the other is writing.
- Unwrapped keys are cached in memory (at most CACHE_SIZE); `destroy` evicts its key, but a
  ring in another process keeps what it cached until it is reopened.

Master-key rotation (`rotate_master`, `dtma keys rotate`), safe against a crash at any point:
1. take `<key_file>.lock` (flock), which every rotation and every recovery holds;
2. write the new key to `<key_file>.new` (0600, fsync, fsync of the directory);
3. in ONE transaction, re-wrap every live data key with the new key, recording its fingerprint;
4. rename `.new` over the key file (atomic), fsync the directory; then erase as for a destroy.
Recovery (`load_ring`, and a ring meeting a fingerprint it does not hold) takes the lock, reads
the live rows' fingerprint and keeps whichever of the key file and `.new` matches it: after a
crash before step 3 committed the key file matches (the stray `.new` is removed); after a crash
between 3 and 4 `.new` matches (it is renamed into place). If neither matches it raises
KeyFileError rather than create a key that would orphan the data.

Raises, all under KeyringError: UnknownKeyError, KeyDestroyedError, CiphertextError,
KeyFileError (and its MasterKeyMismatchError); and StoreUnavailableError.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox
from nacl.secret import SecretBox
from nacl.signing import SigningKey
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventstore import keyfile, schema
from eventstore.errors import CiphertextError as CiphertextError  # "as": re-exported
from eventstore.errors import KeyDestroyedError as KeyDestroyedError
from eventstore.errors import KeyFileError as KeyFileError
from eventstore.errors import KeyringError as KeyringError
from eventstore.errors import MasterKeyMismatchError as MasterKeyMismatchError
from eventstore.errors import StoreUnavailableError
from eventstore.errors import UnknownKeyError as UnknownKeyError
from eventstore.keyfile import MasterKey as MasterKey
from eventstore.signing import Signer
from eventstore.store import _translated
from eventstore.times import format_time

logger = logging.getLogger(__name__)

T = TypeVar("T")
DATA_KEY_BYTES = 32
CACHE_SIZE = 256
BOX_KEY_ID = "x25519-service"
AUDIT_KEY_ID = "ed25519-audit"
# A data key that encrypts nothing: keeps the master's fingerprint in the table even before the
# first secret, so a stale master can never start a second generation of wrapped keys.
MASTER_CHECK_ID = "master-check"
CHECKPOINT_ATTEMPTS = 3
LOCK_TABLE = sa.text("LOCK TABLE data_keys IN SHARE ROW EXCLUSIVE MODE")
KEYS = schema.data_keys.c


async def load_ring(engine: AsyncEngine, key_file: Path) -> KeyRing:
    """The ring over a migrated database, with the master key in `key_file` (created with mode
    0600 on first use); finishes or undoes an interrupted rotation first.

    Raises:
        KeyFileError: the key file is unusable or does not hold the database's master key.
    """
    async with keyfile.locked(key_file):
        master = await asyncio.to_thread(keyfile.recover, key_file, await _live_fingerprint(engine))
    ring = KeyRing(engine, master, key_file=key_file)
    await ring._ensure(MASTER_CHECK_ID, lambda: secrets.token_bytes(DATA_KEY_BYTES))
    return ring


class KeyRing:
    """Creates, uses and destroys data keys; re-wraps them all when the master key rotates.

    `key_file`, when given, is where the ring re-reads the master key after another process
    rotated it; without one, meeting another master raises MasterKeyMismatchError.
    """

    def __init__(
        self, engine: AsyncEngine, master: MasterKey, *, key_file: Path | None = None
    ) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._master = master
        self._key_file = key_file
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._generation = 0  # counts destroys: a read that overlapped one must not cache
        self._box: PrivateKey | None = None

    def __repr__(self) -> str:
        return f"KeyRing(master={self._master.fingerprint!r})"

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the master key the ring wraps with."""
        return self._master.fingerprint

    async def create(self) -> str:
        """A new random data key, stored wrapped (durably) before its id is returned."""
        key_id = secrets.token_hex(16)
        await self._add(key_id, secrets.token_bytes(DATA_KEY_BYTES))
        return key_id

    async def encrypt(self, key_id: str, plaintext: bytes) -> str:
        """Base64 SecretBox ciphertext (random nonce included). Raises UnknownKeyError,
        KeyDestroyedError."""
        box = SecretBox(await self._data_key(key_id))
        return base64.b64encode(box.encrypt(plaintext)).decode("ascii")

    async def decrypt(self, key_id: str, ciphertext: str) -> bytes:
        """Raises UnknownKeyError, KeyDestroyedError, CiphertextError (wrong key, tampered)."""
        box = SecretBox(await self._data_key(key_id))
        try:
            return box.decrypt(base64.b64decode(ciphertext, validate=True))
        except (CryptoError, ValueError):
            raise CiphertextError(key_id) from None

    async def destroy(self, key_id: str) -> None:
        """Forget the key for good: `wrapped` becomes NULL, then the old bytes are erased from
        the database files. Destroying it again is harmless. Raises UnknownKeyError."""
        self._forget(key_id)
        async with self._writing() as connection:
            changed = await connection.execute(
                schema.data_keys.update()
                .where(KEYS.key_id == key_id)
                .values(wrapped=None, destroyed_at=sa.func.coalesce(KEYS.destroyed_at, _now()))
            )
            if changed.rowcount == 0:
                raise UnknownKeyError(key_id)
        self._forget(key_id)
        await self._erase()

    async def rotate_master(self, new: MasterKey, key_file: Path) -> int:
        """Re-wrap every live data key with `new` and make `new` the content of `key_file`,
        by the procedure in this module's docstring. Returns how many keys were re-wrapped."""
        async with keyfile.locked(key_file):
            live = await _live_fingerprint(self._engine)
            if live not in (None, self._master.fingerprint):
                self._master = await asyncio.to_thread(keyfile.recover, key_file, live)
            await asyncio.to_thread(keyfile.write_pending, key_file, new)
            count = await self._rewrap(new)
            await asyncio.to_thread(keyfile.promote_pending, key_file)
            self._master, self._key_file = new, key_file
        await self._erase()
        return count

    async def box_keypair(self) -> PrivateKey:
        """The service's X25519 key for sealed boxes: created once, stored wrapped like any
        data key (so it survives master rotation). Beware: nacl's str() shows its bytes."""
        if self._box is None:
            secret = await self._ensure(BOX_KEY_ID, lambda: bytes(PrivateKey.generate()))
            self._box = PrivateKey(secret)
        return self._box

    async def public_key_b64(self) -> str:
        """The service's X25519 public key, base64, for backends that seal values."""
        return base64.b64encode(bytes((await self.box_keypair()).public_key)).decode("ascii")

    async def audit_signer(self) -> Signer:
        """The Ed25519 key that signs the log's checkpoints: created once, stored wrapped like
        any data key, so restarts and master rotations leave it (and its public key) as is."""
        seed = await self._ensure(AUDIT_KEY_ID, lambda: bytes(SigningKey.generate()))
        return Signer(SigningKey(seed))

    async def unseal(self, sealed: str) -> bytes:
        """Open a base64 sealed box addressed to the service key. Raises CiphertextError."""
        box = SealedBox(await self.box_keypair())
        try:
            return box.decrypt(base64.b64decode(sealed, validate=True))
        except (CryptoError, ValueError):
            raise CiphertextError(BOX_KEY_ID) from None

    # -- plumbing ------------------------------------------------------------------------

    async def _data_key(self, key_id: str) -> bytes:
        cached = self._cache.get(key_id)
        if cached is not None:
            self._cache.move_to_end(key_id)
            return cached
        return await self._with_current_master(lambda: self._load(key_id))

    async def _load(self, key_id: str) -> bytes:
        generation = self._generation
        query = sa.select(KEYS.wrapped, KEYS.master_fingerprint).where(KEYS.key_id == key_id)
        with _translated():
            async with self._engine.connect() as connection:
                row = (await connection.execute(query)).first()
        if row is None:
            raise UnknownKeyError(key_id)
        if row.wrapped is None:
            raise KeyDestroyedError(key_id)
        secret = self._unwrap(key_id, row.wrapped, row.master_fingerprint)
        if generation == self._generation:
            self._remember(key_id, secret)
        return secret

    async def _ensure(self, key_id: str, make: Callable[[], bytes]) -> bytes:
        """The data key stored under a fixed id, created by the first process that asks."""
        with contextlib.suppress(UnknownKeyError):
            return await self._data_key(key_id)
        secret = make()
        if await self._add(key_id, secret, if_absent=True):
            return secret
        return await self._data_key(key_id)

    async def _add(self, key_id: str, secret: bytes, *, if_absent: bool = False) -> bool:
        added = await self._with_current_master(lambda: self._insert(key_id, secret, if_absent))
        if added:
            self._remember(key_id, secret)
        return added

    async def _insert(self, key_id: str, secret: bytes, if_absent: bool) -> bool:
        async with self._writing() as connection:
            exists = sa.select(KEYS.key_id).where(KEYS.key_id == key_id)
            if if_absent and await connection.scalar(exists) is not None:
                return False
            other = await connection.scalar(
                sa.select(KEYS.master_fingerprint)
                .where(KEYS.wrapped.is_not(None))
                .where(KEYS.master_fingerprint != self._master.fingerprint)
                .limit(1)
            )
            if other is not None:
                raise MasterKeyMismatchError(other, self._master.fingerprint)
            await connection.execute(
                schema.data_keys.insert().values(
                    key_id=key_id,
                    wrapped=_wrap(self._master, secret),
                    master_fingerprint=self._master.fingerprint,
                    created_at=_now(),
                )
            )
        return True

    async def _rewrap(self, new: MasterKey) -> int:
        """Every live key re-wrapped with `new`, in one transaction."""
        live = sa.select(KEYS.key_id, KEYS.wrapped, KEYS.master_fingerprint).where(
            KEYS.wrapped.is_not(None)
        )
        async with self._writing() as connection:
            changes = [
                {"old_id": key_id, "new_wrapped": _wrap(new, self._unwrap(key_id, wrapped, fp))}
                for key_id, wrapped, fp in (await connection.execute(live)).all()
            ]
            if changes:
                await connection.execute(
                    schema.data_keys.update()
                    .where(KEYS.key_id == sa.bindparam("old_id"))
                    .values(
                        wrapped=sa.bindparam("new_wrapped"), master_fingerprint=new.fingerprint
                    ),
                    changes,
                )
        return len(changes)

    def _unwrap(self, key_id: str, wrapped: str, fingerprint: str | None) -> bytes:
        held = self._master.fingerprint
        if fingerprint != held:
            raise MasterKeyMismatchError(str(fingerprint), held)
        try:
            return SecretBox(bytes(self._master)).decrypt(base64.b64decode(wrapped))
        except (CryptoError, ValueError):
            raise KeyFileError(f"data key {key_id!r} does not unwrap with master {held}") from None

    async def _with_current_master(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation`; if the database moved to another master key (another process
        rotated it), re-read the key file and run it once more."""
        try:
            return await operation()
        except MasterKeyMismatchError:
            if self._key_file is None:
                raise
        async with keyfile.locked(self._key_file):
            live = await _live_fingerprint(self._engine)
            self._master = await asyncio.to_thread(keyfile.recover, self._key_file, live)
        return await operation()

    def _remember(self, key_id: str, secret: bytes) -> None:
        self._cache[key_id] = secret
        self._cache.move_to_end(key_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def _forget(self, key_id: str) -> None:
        self._generation += 1
        self._cache.pop(key_id, None)
        if key_id == BOX_KEY_ID:
            self._box = None

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A transaction holding the table's write lock. On SQLite with secure_delete, so that
        space freed in these pages (an update, a page split) keeps no copy of a wrapped key."""
        with _translated():
            async with self._engine.connect() as connection:
                if self._sqlite:
                    await connection.exec_driver_sql("PRAGMA secure_delete=ON")
                    await connection.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    await connection.execute(LOCK_TABLE)
                yield connection
                await connection.commit()
                if self._sqlite:
                    await connection.exec_driver_sql("PRAGMA secure_delete=OFF")

    async def _erase(self) -> None:
        """Push rewritten rows' old bytes out of the database files. The change itself is
        already committed, so a failure here is logged, and the next destroy tries again."""
        try:
            with _translated():
                if self._sqlite:
                    await self._checkpoint()
                else:
                    async with self._engine.connect() as connection:
                        autocommit = await connection.execution_options(
                            isolation_level="AUTOCOMMIT"
                        )
                        await autocommit.exec_driver_sql("VACUUM FULL data_keys")
        except StoreUnavailableError as exc:
            logger.warning("old key material is not yet erased from disk: %s", exc)

    async def _checkpoint(self) -> None:
        async with self._engine.connect() as connection:
            for attempt in range(CHECKPOINT_ATTEMPTS):
                result = await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                if not result.one()[0]:  # 0: every frame copied and the WAL truncated
                    return
                await asyncio.sleep(0.1 * (attempt + 1))
        logger.warning("the WAL stayed busy; old key material stays in it until a checkpoint")


async def _live_fingerprint(engine: AsyncEngine) -> str | None:
    """The master fingerprint of the live rows; None while there are none."""
    query = sa.select(KEYS.master_fingerprint).where(KEYS.wrapped.is_not(None)).distinct()
    with _translated():
        async with engine.connect() as connection:
            found = sorted(str(fp) for fp in (await connection.execute(query)).scalars())
    if len(found) > 1:
        raise KeyFileError(f"data keys are wrapped by several master keys: {', '.join(found)}")
    return found[0] if found else None


def _wrap(master: MasterKey, secret: bytes) -> str:
    return base64.b64encode(SecretBox(bytes(master)).encrypt(secret)).decode("ascii")


def _now() -> str:
    return format_time(datetime.now(UTC))
