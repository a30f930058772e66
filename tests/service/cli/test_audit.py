"""`dtma audit verify | public-key | checkpoint` as an auditor runs them: on copies of a SQLite
file and of a PostgreSQL database, with the public key held out of band."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from nacl.signing import SigningKey
from sqlalchemy.engine import make_url

from eventstore import audit, keyring
from eventstore.records import NewEvent
from eventstore.signing import Signer
from tests.service.cli import test_main as cli
from tests.service.cli.test_main import Finished, Log
from tests.support.databases import fresh_postgres_database, open_migrated_store

Dtma = Callable[..., Awaitable[Finished]]
# The CLI's fixtures, shared with test_cli.py: a SQLite file with three events, and `dtma`.
cli_env, database_file, dtma, log = cli.cli_env, cli.database_file, cli.dtma, cli.log


def copy_of(database: Path, name: str) -> Path:
    """A consistent copy, as `sqlite3 .backup` makes it."""
    copy = database.with_name(name)
    with sqlite3.connect(database) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    target.close()
    return copy


def execute(database: Path, sql: str, *parameters: Any) -> int:
    with sqlite3.connect(database) as connection:
        changed = connection.execute(sql, parameters).rowcount
    connection.close()
    return changed


async def public_key(dtma: Dtma, *args: str) -> dict[str, str]:
    printed = await dtma("audit", "public-key", *args)
    assert printed.returncode == 0, printed.stderr
    answer: dict[str, str] = printed.json()
    return answer


@dataclass(frozen=True)
class Signed:
    """The exported checkpoint's file, and the key that signed it as the auditor keeps it."""

    path: Path
    key: str
    exported: dict[str, Any]


@pytest.fixture
async def signed_log(dtma: Dtma, log: Log, tmp_path: Path) -> Signed:
    """The three-event log with a checkpoint of its head, exported to a file."""
    exported = tmp_path / "head.json"
    signed = await dtma("audit", "checkpoint", "--export", str(exported))
    assert signed.returncode == 0, signed.stderr
    assert signed.json()["position"] == 3
    assert read_json(exported) == signed.json()
    return Signed(exported, signed.json()["publicKey"], signed.json())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


async def test_public_key_prints_the_key_that_signs_checkpoints_in_two_spellings(
    dtma: Dtma, signed_log: Signed
) -> None:
    first = await public_key(dtma)
    second = await public_key(dtma)

    assert first == second
    assert first["publicKeyHex"] == signed_log.key
    assert first["keyId"] == signed_log.exported["keyId"]
    assert bytes.fromhex(first["publicKeyHex"]).hex() == first["publicKeyHex"]
    assert len(first["keyId"]) == 16 and first["algorithm"] == "Ed25519"


async def test_verify_passes_on_an_untouched_copy_under_the_key_held_apart(
    dtma: Dtma, signed_log: Signed, database_file: Path
) -> None:
    key = signed_log.key
    copy = copy_of(database_file, "copy.db")

    result = await dtma("audit", "verify", "--database-url", str(copy), "--public-key", key)

    assert result.returncode == 0, result.stdout + result.stderr
    report = result.json()
    assert report["ok"] is True and report["checked"] == 3
    assert report["checkpoints"]["checked"] == 1
    assert report["checkpoints"]["lastVerifiedPosition"] == 3
    assert report["checkpoints"]["keysFrom"] == "argument"


async def test_verify_names_the_changed_event_of_a_copy_and_exits_1(
    dtma: Dtma, signed_log: Signed, database_file: Path
) -> None:
    key = signed_log.key
    copy = copy_of(database_file, "copy.db")
    assert execute(copy, "UPDATE events SET data = replace(data, '5', '6') WHERE position = 2")

    result = await dtma(
        "audit", "verify", "--database-url", f"sqlite:///{copy}", "--public-key", key
    )

    assert result.returncode == 1
    report = result.json()
    assert (report["ok"], report["firstBadPosition"]) == (False, 2)
    assert report["checkpoints"]["lastVerifiedPosition"] == 0
    live = await dtma("audit", "verify")  # the original is untouched
    assert live.returncode == 0, live.stdout


async def test_verify_names_a_tampered_checkpoint(
    dtma: Dtma, signed_log: Signed, database_file: Path
) -> None:
    key = signed_log.key
    copy = copy_of(database_file, "copy.db")
    assert execute(copy, "UPDATE signed_checkpoints SET signed_at = '2001-01-01T00:00:00.000000Z'")

    result = await dtma("audit", "verify", "--database-url", str(copy), "--public-key", key)

    assert result.returncode == 1
    checkpoints = result.json()["checkpoints"]
    assert checkpoints["firstBadCheckpoint"] == 3
    assert "signature" in checkpoints["problem"]


async def test_verify_rejects_a_checkpoint_forged_with_another_key(
    dtma: Dtma, signed_log: Signed, database_file: Path
) -> None:
    key = signed_log.key
    copy = copy_of(database_file, "copy.db")
    head_hash = execute_scalar(copy, "SELECT hash FROM events WHERE position = 3")
    forged = Signer(SigningKey.generate()).sign(3, head_hash, "2030-01-01T00:00:00.000000Z")
    execute(
        copy,
        "UPDATE signed_checkpoints SET key_id = ?, public_key = ?, signature = ?, signed_at = ?",
        forged.key_id,
        forged.public_key,
        forged.signature,
        forged.signed_at,
    )

    trusting = await dtma("audit", "verify", "--database-url", str(copy), "--public-key", key)
    naive = await dtma("audit", "verify", "--database-url", str(copy))

    assert trusting.returncode == 1
    assert "not a trusted key" in trusting.json()["checkpoints"]["problem"]
    # Without the key held apart, the forger's own key is all there is to check against.
    assert naive.returncode == 0 and naive.json()["checkpoints"]["keysFrom"] == "checkpoints"


async def test_verify_against_the_exported_head_catches_a_truncated_copy(
    dtma: Dtma, signed_log: Signed, database_file: Path, log: Log
) -> None:
    key = signed_log.key
    copy = copy_of(database_file, "copy.db")
    execute(copy, "DELETE FROM events WHERE position > 2")
    execute(copy, "DELETE FROM signed_checkpoints")
    known = f"3:{log.events[2]['hash']}"

    alone = await dtma("audit", "verify", "--database-url", str(copy), "--public-key", key)
    by_file = await dtma(
        "audit", "verify", "--database-url", str(copy), "--public-key", key,
        "--against", str(signed_log.path),
    )  # fmt: skip
    by_hash = await dtma("audit", "verify", "--database-url", str(copy), "--against", known)

    assert alone.returncode == 0  # the copy is consistent in itself
    for result in (by_file, by_hash):
        assert result.returncode == 1
        [head] = result.json()["knownHeads"]
        assert head["ok"] is False and "ends at position 2" in head["problem"]


async def test_verify_refuses_an_exported_head_not_signed_by_the_trusted_key(
    dtma: Dtma, signed_log: Signed, database_file: Path, tmp_path: Path
) -> None:
    forged = tmp_path / "forged.json"
    forged.write_text(
        json.dumps({**signed_log.exported, "signedAt": "2030-01-01T00:00:00.000000Z"})
    )
    key = signed_log.key

    result = await dtma("audit", "verify", "--public-key", key, "--against", str(forged))

    assert result.returncode == 1
    assert "signature" in result.json()["knownHeads"][0]["problem"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--database-url", "/nowhere/dtma.db"], "no database file"),
        (["--public-key", "not-a-key"], "--public-key"),
        (["--against", "/nowhere/head.json"], "--against"),
    ],
    ids=["missing-database", "bad-key", "bad-against"],
)
async def test_verify_refuses_bad_arguments_with_exit_2(
    dtma: Dtma, log: Log, args: list[str], named: str
) -> None:
    result = await dtma("audit", "verify", *args)

    assert result.returncode == 2
    assert named in result.stderr and "Traceback" not in result.stderr


async def test_verify_of_a_file_that_is_no_database_exits_1_without_a_traceback(
    dtma: Dtma, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, " * 512)

    result = await dtma("audit", "verify", "--database-url", str(garbage))

    assert result.returncode == 1
    assert "database" in result.stderr and "Traceback" not in result.stderr


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_verify_on_a_copy_of_a_postgres_database_names_the_changed_event(
    dtma: Dtma, postgres_url: str, tmp_path: Path
) -> None:
    store = await open_migrated_store(postgres_url)
    try:
        for n in range(7):
            await store.append("s", [NewEvent("Happened", {"n": n})], None)
        ring = await keyring.load_ring(store.engine, tmp_path / "dtma.key")
        await audit.Checkpointer(store, await ring.audit_signer(), 3).sign_due()
    finally:
        await store.close()
    key = (await public_key(dtma, "--database-url", postgres_url))["publicKey"]

    async with fresh_postgres_database(template=make_url(postgres_url).database) as copy:
        intact = await dtma("audit", "verify", "--database-url", copy, "--public-key", key)
        changed = await asyncpg.connect(make_url(copy).render_as_string(hide_password=False))
        await changed.execute("UPDATE events SET data = '{\"n\":40}' WHERE position = 4")
        await changed.close()
        tampered = await dtma("audit", "verify", "--database-url", copy, "--public-key", key)

    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert intact.json()["checkpoints"]["lastVerifiedPosition"] == 6
    assert tampered.returncode == 1
    assert tampered.json()["firstBadPosition"] == 4
    assert tampered.json()["checkpoints"]["lastVerifiedPosition"] == 3


def execute_scalar(database: Path, sql: str) -> Any:
    with sqlite3.connect(database) as connection:
        value = connection.execute(sql).fetchone()[0]
    connection.close()
    return value
