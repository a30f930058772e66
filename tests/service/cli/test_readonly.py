"""The readers (`dtma replay`, `dtma events`, `dtma audit verify`) as an auditor runs them on a
copy: a read-only SQLite file in a read-only directory, a PostgreSQL role that may only SELECT,
and databases whose schema is not the newest, which they refuse rather than migrate."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

import migrations
from eventstore.engines import create_engine
from eventstore.records import NewEvent
from tests.service.cli.test_main import COMMAND_TIMEOUT_S, DTMA, Finished, head_revision
from tests.service.cli.test_main import run_command as run
from tests.support.databases import open_migrated_store, postgres_required
from tests.support.ports import free_port

THRESHOLDS = (3, 5, 8)  # one CircuitBreakerConfigured event each, positions 1 to 3
# Without these capabilities root is held to the permission bits like anyone else.
SEALED = ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner")
READERS = (("replay", "--until", "2"), ("events",), ("audit", "verify"))


def sealed_prefix() -> tuple[str, ...]:
    """What runs a command so that a 0444 file in a 0555 directory really is read-only to it."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, and setpriv (util-linux) is missing to drop DAC override")
    return SEALED


@pytest.fixture
def reader_env(tmp_path: Path) -> dict[str, str]:
    """The environment without any DTMA_ setting: the URL comes with each command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTMA_")}
    env["DTMA_KEY_FILE"] = str(tmp_path / "no-such.key")
    return env


async def read(url: str, env: dict[str, str], cwd: Path, *prefix: str) -> list[Finished]:
    """The three readers' results, in READERS' order."""
    return [
        await run(*prefix, str(DTMA), *args, "--database-url", url, env=env, cwd=cwd)
        for args in READERS
    ]


async def write_log(url: str) -> None:
    store = await open_migrated_store(url)
    try:
        for threshold in THRESHOLDS:
            data = {"mcp_server_id": "search", "failure_threshold": threshold}
            await store.append(
                "health-breakers", [NewEvent("CircuitBreakerConfigured", data)], None
            )
    finally:
        await store.close()


def assert_answers(replayed: Finished, listed: Finished, verified: Finished) -> None:
    """Each reader printed its answer, and only its answer, on stdout; no migration ran."""
    for result in (replayed, listed, verified):
        assert result.returncode == 0, result.stderr
        assert "alembic.runtime" not in result.stderr and "Traceback" not in result.stderr
    state = replayed.json()
    assert state["position"] == 2
    assert state["state"]["health"]["breaker_servers"]["search"]["failure_threshold"] == 5
    assert [json.loads(line)["position"] for line in listed.stdout.splitlines()] == [1, 2, 3]
    assert (verified.json()["ok"], verified.json()["checked"]) == (True, 3)


# -- SQLite: a read-only file in a read-only directory -----------------------------------------


@pytest.fixture
def sealed_directory(tmp_path: Path) -> Iterator[Path]:
    """An empty directory that the test seals (0555) once its database is in place."""
    directory = tmp_path / "handed-over"
    directory.mkdir()
    try:
        yield directory
    finally:
        directory.chmod(0o755)  # so that pytest can remove tmp_path


def seal(directory: Path) -> dict[str, str]:
    """Make every file 0444 and the directory 0555; return each file's SHA-256."""
    digests = {}
    for path in directory.iterdir():
        path.chmod(0o444)
        digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    directory.chmod(0o555)
    return digests


def contents(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


async def assert_unwritable(path: Path, prefix: tuple[str, ...], env: dict[str, str]) -> None:
    """The sandbox holds: the readers' process may neither change the file nor add one."""
    script = (
        "import sys\n"
        "for target, mode in ((sys.argv[1], 'ab'), (sys.argv[1] + '-shm', 'wb')):\n"
        "    try:\n"
        "        open(target, mode).close()\n"
        "    except PermissionError:\n"
        "        continue\n"
        "    sys.exit(f'{target} is writable')\n"
    )
    probe = await run(*prefix, sys.executable, "-c", script, str(path), env=env, cwd=path.parent)
    assert probe.returncode == 0, probe.stderr


async def test_readers_answer_from_a_read_only_file_in_a_read_only_directory_unchanged(
    sealed_directory: Path, reader_env: dict[str, str]
) -> None:
    database = sealed_directory / "dtma.db"
    await write_log(f"sqlite:///{database}")
    assert list(contents(sealed_directory)) == ["dtma.db"]  # no -wal, no -shm
    before = seal(sealed_directory)
    prefix = sealed_prefix()
    await assert_unwritable(database, prefix, reader_env)

    results = await read(f"sqlite:///{database}", reader_env, sealed_directory, *prefix)

    assert_answers(*results)
    assert contents(sealed_directory) == before  # the same bytes, and no -wal or -shm beside


async def test_readers_refuse_a_sealed_copy_whose_wal_holds_commits_the_file_lacks(
    sealed_directory: Path, tmp_path: Path, reader_env: dict[str, str]
) -> None:
    source = tmp_path / "live.db"
    await write_log(f"sqlite:///{source}")
    writer = sqlite3.connect(source)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")  # the next commit stays in the -wal
        writer.execute("INSERT INTO checkpoints VALUES ('projections', 3, '2026-12-03')")
        writer.commit()
        shutil.copyfile(source, sealed_directory / "dtma.db")
        shutil.copyfile(f"{source}-wal", sealed_directory / "dtma.db-wal")
    finally:
        writer.close()
    assert (sealed_directory / "dtma.db-wal").stat().st_size > 0
    before = seal(sealed_directory)

    results = await read(
        f"sqlite:///{sealed_directory / 'dtma.db'}", reader_env, tmp_path, *sealed_prefix()
    )

    for result in results:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "-wal" in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""
    assert contents(sealed_directory) == before


# -- PostgreSQL: a role that may only SELECT ---------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def select_only_role(url: str) -> AsyncIterator[str]:
    """A login role that may connect to `url`'s database and SELECT its tables, nothing more
    (no TEMP either); yields `url` spelled with that role."""
    database = make_url(url).database
    role, password = f"dtma_reader_{secrets.token_hex(4)}", secrets.token_hex(12)
    owner = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await owner.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    except asyncpg.InsufficientPrivilegeError as exc:
        await owner.close()
        postgres_required(f"the test role may not CREATE ROLE ({exc})")
    try:
        await owner.execute(f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC')
        await owner.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {role}')
        await owner.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        yield (
            make_url(url)
            .set(username=role, password=password)
            .render_as_string(hide_password=False)
        )
    finally:
        await owner.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        await owner.execute(f'REVOKE ALL ON DATABASE "{database}" FROM {role}')
        await owner.execute(f"DROP ROLE {role}")
        await owner.close()


async def log_rows(url: str) -> list[Any]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return [
            tuple(row)
            for table in ("events", "checkpoints", "snapshots", "alembic_version")
            for row in await connection.fetch(f"SELECT * FROM {table} ORDER BY 1")
        ]
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_readers_answer_through_a_role_that_may_only_select(
    postgres_url: str, reader_env: dict[str, str], tmp_path: Path
) -> None:
    await write_log(postgres_url)
    before = await log_rows(postgres_url)

    async with select_only_role(postgres_url) as reader_url:
        results = await read(reader_url, reader_env, tmp_path)

    assert_answers(*results)
    assert await log_rows(postgres_url) == before


@pytest.mark.postgres
async def test_events_follow_through_a_select_only_role_prints_later_appends(
    postgres_url: str, reader_env: dict[str, str], tmp_path: Path
) -> None:
    await write_log(postgres_url)
    async with select_only_role(postgres_url) as reader_url:
        follower = await asyncio.create_subprocess_exec(
            str(DTMA),
            *("events", "--follow", "--after", "3", "--database-url", reader_url),
            env=reader_env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            store = await open_migrated_store(postgres_url)
            try:
                data = {"failure_threshold": 11}
                await store.append(
                    "health-breakers", [NewEvent("CircuitBreakerConfigured", data)], None
                )
            finally:
                await store.close()
            assert follower.stdout is not None
            line = await asyncio.wait_for(follower.stdout.readline(), COMMAND_TIMEOUT_S)
        finally:
            follower.terminate()
            _out, err = await follower.communicate()

    assert json.loads(line)["position"] == 4, err.decode()
    assert json.loads(line)["data"] == {"failure_threshold": 11}


# -- a schema that is not the newest, on both databases ---------------------------------------


async def prepare(url: str, revision: str | None) -> None:
    """An empty database (None), one migrated to `revision`, or one at head that claims an
    unknown revision ("0999")."""
    if make_url(url).get_backend_name() == "sqlite":
        sqlite3.connect(make_url(url).database or "").close()  # an empty file
    if revision is None:
        return
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine, "head" if revision == "0999" else revision)
        if revision == "0999":
            async with engine.begin() as connection:
                await connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0999'")
    finally:
        await engine.dispose()


async def stored_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return await migrations.current_revision(engine)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("revision", [None, "0002", "0999"], ids=["empty", "behind", "unknown"])
async def test_readers_refuse_a_schema_other_than_the_newest_naming_both_revisions(
    database_url: str, revision: str | None, reader_env: dict[str, str], tmp_path: Path
) -> None:
    await prepare(database_url, revision)
    head = head_revision()

    results = await read(database_url, reader_env, tmp_path)

    for result in results:
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr.startswith("dtma: the database ")
        assert result.stderr.count("\n") == 1  # the one message: no log line, no traceback
        assert f"reads revision {head}" in result.stderr or f"it reads {head}" in result.stderr
        named = "no schema" if revision is None else f"revision {revision}"
        assert named in result.stderr
    assert await stored_revision(database_url) == revision  # not migrated


async def test_readers_name_a_database_they_cannot_reach_with_exit_1_and_no_traceback(
    reader_env: dict[str, str], tmp_path: Path
) -> None:
    unreachable = f"postgresql://dtma:dtma@127.0.0.1:{free_port()}/dtma"

    results = await read(unreachable, reader_env, tmp_path)

    for result in results:
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.startswith("dtma: cannot read the database: ")
        assert "Traceback" not in result.stderr and result.stdout == ""
