"""Opening a database for reading only: SQLite through a `file:` URI (`mode=ro`, or
`immutable=1` on a read-only medium), PostgreSQL in read-only transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url

from eventstore.errors import StoreUnavailableError

# Every transaction on a reader's PostgreSQL connections refuses writes, whatever the role may do.
POSTGRES_SERVER_SETTINGS = {"default_transaction_read_only": "on"}
SQLITE_PRAGMAS = ("PRAGMA busy_timeout=10000",)  # journal_mode=WAL would be a write
# What SQLite answers where it cannot make a WAL database's -shm: SQLITE_READONLY_DIRECTORY
# and its relatives, or SQLITE_CANTOPEN. A busy or corrupt database is not one of these.
NEEDS_SIDE_FILES = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)


def sqlite_url(url: str) -> str:
    """`sqlite:///PATH` as a read-only `file:` URI. Blocking: it opens the file once to choose.

    `mode=ro` sees what a live writer commits, but on a WAL database SQLite must open or create
    the `-shm` and `-wal` files beside it. Where it cannot (a read-only directory without
    them), `immutable=1` reads the file alone, without locks. That is safe only because no
    writer can work in such a directory either, and only if no `-wal` (or hot `-journal`)
    beside it holds what the file lacks; then the reader is refused instead.

    Raises:
        StoreUnavailableError: the file cannot be read.
    """
    path = Path(make_url(url).database or "").resolve()
    failure = _failure(_uri(path, "mode=ro"))
    if failure is None:
        return _url(path, "mode=ro")
    problem = str(failure)
    if failure.sqlite_errorcode & 0xFF not in NEEDS_SIDE_FILES:
        raise StoreUnavailableError(f"cannot read {str(path)!r}: {problem}")
    for suffix in ("-wal", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists() and side.stat().st_size > 0:
            raise StoreUnavailableError(
                f"cannot read {str(path)!r} read-only ({problem}): its {suffix} file holds "
                "changes that SQLite reads only in a writable directory (or, for a -wal, "
                "with its -shm beside it)"
            )
    failure = _failure(_uri(path, "immutable=1"))
    if failure is not None:
        raise StoreUnavailableError(f"cannot read {str(path)!r}: {failure}")
    return _url(path, "immutable=1")


def _uri(path: Path, option: str) -> str:
    return f"file:{quote(str(path))}?{option}"


def _url(path: Path, option: str) -> str:
    name, _, value = option.partition("=")
    database = f"file:{quote(str(path))}"
    return URL.create(
        "sqlite", database=database, query={name: value, "uri": "true"}
    ).render_as_string()


def _failure(uri: str) -> sqlite3.Error | None:
    """Why SQLite cannot read the schema through `uri`, or None if it can."""
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        return exc
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return exc
    finally:
        connection.close()
    return None
