"""The SQLite database file and its -wal and -shm are their owner's alone (mode 0600)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from eventstore import NewEvent
from eventstore.engines import create_engine
from tests.support.databases import open_migrated_store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def open_to_others(database: Path) -> None:
    """A WAL database and its -wal, both 0644, as an older DTMA left them."""
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
    Path(f"{database}-wal").touch()
    for path in (database, Path(f"{database}-wal")):
        path.chmod(0o644)


async def test_a_new_database_and_its_wal_and_shm_are_created_0600(tmp_path: Path) -> None:
    database = tmp_path / "dtma.db"
    previous = os.umask(0o022)
    try:
        store = await open_migrated_store(f"sqlite:///{database}")
        try:
            await store.append("s-1", [NewEvent("Happened", {"n": 1})], expected_version=0)
            files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
            assert [mode(f) for f in files] == [0o600] * 3
        finally:
            await store.close()
    finally:
        os.umask(previous)


async def test_an_existing_database_open_to_others_is_narrowed_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "dtma.db"
    open_to_others(database)

    engine = create_engine(f"sqlite:///{database}")
    await engine.dispose()

    assert mode(database) == 0o600 and mode(Path(f"{database}-wal")) == 0o600
    assert f"{database} was open to group or others" in caplog.text


async def test_a_read_only_engine_changes_no_mode(tmp_path: Path) -> None:
    database = tmp_path / "copy.db"
    sqlite3.connect(database).close()
    database.chmod(0o644)

    engine = create_engine(f"sqlite:///{database}", read_only=True)
    await engine.dispose()

    assert mode(database) == 0o644
