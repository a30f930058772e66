"""The key ring on a SQLite file and on a real PostgreSQL server: data keys, crypto-shredding,
master-key rotation and its crash recovery, the service's X25519 key."""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path

import pytest
import sqlalchemy as sa
from nacl.exceptions import CryptoError
from nacl.public import PublicKey, SealedBox
from nacl.secret import SecretBox

from eventstore import keyfile, keyring
from eventstore.keyring import (
    CiphertextError,
    KeyDestroyedError,
    KeyFileError,
    KeyRing,
    MasterKey,
    MasterKeyMismatchError,
    UnknownKeyError,
)
from eventstore.records import NewEvent
from eventstore.store import EventStore
from tests.support.databases import open_migrated_store

KEYS = sa.table(
    "data_keys",
    sa.column("key_id"),
    sa.column("wrapped"),
    sa.column("master_fingerprint"),
    sa.column("destroyed_at"),
)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "dtma.key"


@pytest.fixture
async def ring(store: EventStore, key_file: Path) -> KeyRing:
    return await keyring.load_ring(store.engine, key_file)


async def reopen(store: EventStore, key_file: Path) -> KeyRing:
    """A ring as a restarted process gets it: nothing cached."""
    return await keyring.load_ring(store.engine, key_file)


async def row(store: EventStore, key_id: str) -> tuple[str | None, str | None, str | None]:
    """(wrapped, master_fingerprint, destroyed_at) as stored."""
    query = sa.select(KEYS.c.wrapped, KEYS.c.master_fingerprint, KEYS.c.destroyed_at).where(
        KEYS.c.key_id == key_id
    )
    async with store.engine.connect() as connection:
        wrapped, fingerprint, destroyed_at = (await connection.execute(query)).one()
    return wrapped, fingerprint, destroyed_at


def unwrap(master: MasterKey, wrapped: str) -> bytes:
    return SecretBox(bytes(master)).decrypt(base64.b64decode(wrapped))


def spellings(secret: bytes) -> list[bytes]:
    """The ways a key's bytes could sit in a file: raw, base64, hex."""
    return [secret, base64.b64encode(secret), binascii.hexlify(secret)]


# -- data keys ---------------------------------------------------------------------------------


async def test_a_data_key_encrypts_and_a_reopened_ring_decrypts(
    store: EventStore, ring: KeyRing, key_file: Path
) -> None:
    key_id = await ring.create()
    ciphertext = await ring.encrypt(key_id, b"s3cr3t value")

    assert b"s3cr3t" not in base64.b64decode(ciphertext)
    assert await ring.decrypt(key_id, ciphertext) == b"s3cr3t value"
    assert await (await reopen(store, key_file)).decrypt(key_id, ciphertext) == b"s3cr3t value"
    assert await ring.encrypt(key_id, b"same") != await ring.encrypt(key_id, b"same")


async def test_two_data_keys_do_not_decrypt_each_others_ciphertext(ring: KeyRing) -> None:
    first, second = await ring.create(), await ring.create()
    ciphertext = await ring.encrypt(first, b"for the first key only")

    with pytest.raises(CiphertextError):
        await ring.decrypt(second, ciphertext)
    tampered = bytearray(base64.b64decode(ciphertext))
    tampered[-1] ^= 1
    with pytest.raises(CiphertextError):
        await ring.decrypt(first, base64.b64encode(bytes(tampered)).decode())
    with pytest.raises(CiphertextError):
        await ring.decrypt(first, "not base64!")


async def test_an_unknown_key_raises_unknown_key_error(ring: KeyRing) -> None:
    with pytest.raises(UnknownKeyError):
        await ring.encrypt("f" * 32, b"x")
    with pytest.raises(UnknownKeyError):
        await ring.decrypt("f" * 32, "AAAA")
    with pytest.raises(UnknownKeyError):
        await ring.destroy("f" * 32)


async def test_a_destroyed_key_raises_key_destroyed_error_and_destroy_is_idempotent(
    store: EventStore, ring: KeyRing, key_file: Path
) -> None:
    key_id = await ring.create()
    ciphertext = await ring.encrypt(key_id, b"forget me")
    await ring.decrypt(key_id, ciphertext)  # now cached

    await ring.destroy(key_id)
    wrapped, _fingerprint, destroyed_at = await row(store, key_id)
    await ring.destroy(key_id)

    assert wrapped is None and destroyed_at is not None
    assert (await row(store, key_id))[2] == destroyed_at
    for reader in (ring, await reopen(store, key_file)):
        with pytest.raises(KeyDestroyedError) as raised:
            await reader.decrypt(key_id, ciphertext)
        assert raised.value.key_id == key_id
        with pytest.raises(KeyDestroyedError):
            await reader.encrypt(key_id, b"more")


@pytest.mark.parametrize("checkpointed", [True, False], ids=["in-db-file", "in-wal-only"])
async def test_destroy_leaves_no_copy_of_the_key_in_the_sqlite_files(
    sqlite_url: str, tmp_path: Path, key_file: Path, checkpointed: bool
) -> None:
    store = await open_migrated_store(sqlite_url)
    try:
        ring = await keyring.load_ring(store.engine, key_file)
        # Enough rows that the table's pages split after the victim was written.
        victim, *others = [await ring.create() for _ in range(120)]
        wrapped = (await row(store, victim))[0]
        assert wrapped is not None
        secret = unwrap(keyfile.read_key(key_file), wrapped)
        needles = [wrapped.encode(), *spellings(base64.b64decode(wrapped)), *spellings(secret)]
        if checkpointed:
            async with store.engine.connect() as connection:
                await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        assert wrapped.encode() in await database_bytes(tmp_path)  # the search finds it

        await ring.destroy(victim)
        await ring.destroy(others[50])

        haystack = await database_bytes(tmp_path)
        assert [needle for needle in needles if needle in haystack] == []
        assert (await row(store, others[0]))[0] is not None
    finally:
        await store.close()


async def database_bytes(directory: Path) -> bytes:
    files = [directory / name for name in ("dtma.db", "dtma.db-wal", "dtma.db-shm")]
    return b"".join([await asyncio.to_thread(f.read_bytes) for f in files if f.exists()])


@pytest.mark.postgres
async def test_destroy_on_postgres_nulls_the_row_and_rewrites_the_table_file(
    postgres_url: str, key_file: Path
) -> None:
    store = await open_migrated_store(postgres_url)
    try:
        ring = await keyring.load_ring(store.engine, key_file)
        key_id = await ring.create()
        wrapped = (await row(store, key_id))[0]
        assert wrapped is not None
        filenode = "SELECT pg_relation_filenode('data_keys')"
        async with store.engine.connect() as connection:
            before = await connection.scalar(sa.text(filenode))

        await ring.destroy(key_id)

        async with store.engine.connect() as connection:
            after = await connection.scalar(sa.text(filenode))
            found = await connection.scalar(
                sa.select(sa.func.count()).select_from(KEYS).where(KEYS.c.wrapped == wrapped)
            )
        assert (await row(store, key_id))[0] is None
        assert found == 0
        assert after != before  # VACUUM FULL moved the table to a new file, the old one is gone
    finally:
        await store.close()


async def test_key_writes_and_concurrent_appends_all_succeed(
    store: EventStore, ring: KeyRing
) -> None:
    doomed = [await ring.create() for _ in range(5)]

    async def append(n: int) -> int:
        result = await store.append(f"s-{n}", [NewEvent(type="Happened", data={"n": n})], 0)
        return result.positions[0]

    results = await asyncio.gather(
        *(append(n) for n in range(30)),
        *(ring.create() for _ in range(15)),
        *(ring.destroy(key_id) for key_id in doomed),
    )

    assert sorted(results[:30]) == list(range(1, 31))  # type: ignore[type-var]
    assert len(set(results[30:45])) == 15


# -- master key rotation -----------------------------------------------------------------------


async def test_rotation_rewraps_every_key_so_only_the_new_master_unwraps_them(
    store: EventStore, ring: KeyRing, key_file: Path
) -> None:
    old = keyfile.read_key(key_file)
    keys = [await ring.create() for _ in range(3)]
    ciphertexts = [await ring.encrypt(key_id, f"value {key_id}".encode()) for key_id in keys]
    await ring.destroy(keys[2])
    new = MasterKey.generate()

    rewrapped = await ring.rotate_master(new, key_file)

    assert rewrapped == 3  # two data keys and the master check
    assert keyfile.read_key(key_file) == new
    assert not keyfile.pending_path(key_file).exists()
    assert ring.fingerprint == new.fingerprint
    for key_id in keys[:2]:
        wrapped, fingerprint, _ = await row(store, key_id)
        assert wrapped is not None and fingerprint == new.fingerprint
        with pytest.raises(CryptoError):
            unwrap(old, wrapped)
        assert len(unwrap(new, wrapped)) == 32
    reopened = await reopen(store, key_file)
    for key_id, ciphertext in list(zip(keys, ciphertexts, strict=True))[:2]:
        assert await reopened.decrypt(key_id, ciphertext) == f"value {key_id}".encode()
    with pytest.raises(KeyDestroyedError):
        await reopened.decrypt(keys[2], ciphertexts[2])


async def test_load_after_a_crash_before_the_rotation_committed_keeps_the_old_key(
    store: EventStore, ring: KeyRing, key_file: Path
) -> None:
    key_id = await ring.create()
    ciphertext = await ring.encrypt(key_id, b"still here")
    old = keyfile.read_key(key_file)
    keyfile.write_pending(key_file, MasterKey.generate())  # step 2 done, step 3 never committed

    reopened = await reopen(store, key_file)

    assert reopened.fingerprint == old.fingerprint
    assert keyfile.read_key(key_file) == old
    assert not keyfile.pending_path(key_file).exists()
    assert await reopened.decrypt(key_id, ciphertext) == b"still here"


async def test_load_after_a_crash_between_commit_and_rename_takes_the_new_key(
    store: EventStore, ring: KeyRing, key_file: Path, tmp_path: Path
) -> None:
    key_id = await ring.create()
    ciphertext = await ring.encrypt(key_id, b"still here")
    old = keyfile.read_key(key_file)
    new = MasterKey.generate()
    # The database is rotated (through another key file), `.new` holds the new key, and the key
    # file still holds the old one: a crash right after the commit.
    await ring.rotate_master(new, tmp_path / "elsewhere.key")
    keyfile.write_pending(key_file, new)
    assert keyfile.read_key(key_file) == old

    reopened = await reopen(store, key_file)

    assert reopened.fingerprint == new.fingerprint
    assert keyfile.read_key(key_file) == new
    assert not keyfile.pending_path(key_file).exists()
    assert await reopened.decrypt(key_id, ciphertext) == b"still here"


async def test_load_refuses_a_key_file_that_is_not_the_databases_master(
    store: EventStore, ring: KeyRing, key_file: Path
) -> None:
    await ring.create()
    await asyncio.to_thread(key_file.unlink)
    with pytest.raises(KeyFileError, match="neither"):
        await reopen(store, key_file)
    # Refused, rather than a new key created that would orphan the data.
    assert not await asyncio.to_thread(key_file.exists)

    MasterKey.load_or_create(key_file)
    with pytest.raises(KeyFileError, match=ring.fingerprint):
        await reopen(store, key_file)


async def test_a_ring_whose_master_was_rotated_away_rereads_the_key_file(
    store: EventStore, ring: KeyRing, key_file: Path
) -> None:
    old = keyfile.read_key(key_file)
    rotator = await reopen(store, key_file)
    uncached = await rotator.create()
    ciphertext = await rotator.encrypt(uncached, b"made before the rotation")
    new = MasterKey.generate()
    await rotator.rotate_master(new, key_file)

    assert await ring.decrypt(uncached, ciphertext) == b"made before the rotation"
    created = await ring.create()

    assert ring.fingerprint == new.fingerprint
    assert (await row(store, created))[1] == new.fingerprint
    with pytest.raises(MasterKeyMismatchError):
        await KeyRing(store.engine, old).create()  # no key file to re-read: refuses to write


# -- the service's X25519 key ------------------------------------------------------------------


async def test_the_service_key_pair_is_stable_across_reopen_and_rotation(
    store: EventStore, ring: KeyRing, key_file: Path
) -> None:
    public = await ring.public_key_b64()
    sealed = SealedBox(PublicKey(base64.b64decode(public))).encrypt(b"sealed by the backend")

    assert await (await reopen(store, key_file)).public_key_b64() == public
    await ring.rotate_master(MasterKey.generate(), key_file)
    assert await ring.public_key_b64() == public
    rotated = await reopen(store, key_file)
    assert await rotated.public_key_b64() == public
    assert bytes((await rotated.box_keypair()).public_key) == base64.b64decode(public)
    assert await rotated.unseal(base64.b64encode(sealed).decode()) == b"sealed by the backend"
    with pytest.raises(CiphertextError):
        await rotated.unseal(base64.b64encode(b"x" * 64).decode())


# -- the audit signing key ---------------------------------------------------------------------


async def test_the_audit_key_is_created_once_and_survives_reopen_and_rotation(
    store: EventStore, ring: KeyRing, key_file: Path
) -> None:
    signer = await ring.audit_signer()
    signed = signer.sign(7, "a" * 64, "2025-01-01T00:00:00.000000Z")

    again = await (await reopen(store, key_file)).audit_signer()
    await ring.rotate_master(MasterKey.generate(), key_file)
    rotated = await (await reopen(store, key_file)).audit_signer()

    assert again.key_id == rotated.key_id == signer.key_id
    rotated.verify_key.verify(signed.message(), bytes.fromhex(signed.signature))
    wrapped, fingerprint, _ = await row(store, keyring.AUDIT_KEY_ID)
    assert wrapped is not None and fingerprint == keyfile.read_key(key_file).fingerprint
    assert signer.key_id in repr(signer) and "SigningKey" not in repr(signer)


# -- no key bytes anywhere they could leak -----------------------------------------------------


async def test_no_key_bytes_in_reprs_or_error_messages(
    store: EventStore, ring: KeyRing, key_file: Path
) -> None:
    master = keyfile.read_key(key_file)
    key_id = await ring.create()
    ciphertext = await ring.encrypt(key_id, b"x")
    wrapped = (await row(store, key_id))[0]
    assert wrapped is not None
    secrets = [bytes(master), unwrap(master, wrapped), bytes(await ring.box_keypair())]
    other = await ring.create()
    await ring.destroy(key_id)
    raised: list[Exception] = []
    for attempt in (
        ring.decrypt(key_id, ciphertext),
        ring.decrypt(other, ciphertext),
        ring.decrypt("0" * 32, ciphertext),
        KeyRing(store.engine, MasterKey.generate()).create(),
    ):
        with pytest.raises(keyring.KeyringError) as caught:
            await attempt
        raised.append(caught.value)

    shown = " ".join(
        [repr(master), str(master), repr(ring), str(ring)]
        + [text for exc in raised for text in (str(exc), repr(exc))]
    )
    assert master.fingerprint in repr(master)
    for secret in secrets:
        for spelling in [*spellings(secret), repr(secret).encode()]:
            assert spelling.decode("latin-1") not in shown
