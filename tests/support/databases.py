"""Real databases for tests: a SQLite file per test, a fresh PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NoReturn

import asyncpg
import pytest
from sqlalchemy.engine import make_url

import migrations
from eventstore.catalogue import Catalogue
from eventstore.engines import create_engine
from eventstore.store import EventStore

DEFAULT_POSTGRES_URL = "postgresql://dtma:dtma@127.0.0.1:5432/dtma_test"


def postgres_required(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL is not available: {reason}")


@asynccontextmanager
async def fresh_postgres_database(template: str | None = None) -> AsyncIterator[str]:
    """A new database on the test server, dropped afterwards; yields its URL. Empty, or a copy
    of the database named `template` (CREATE DATABASE ... TEMPLATE)."""
    base = make_url(os.environ.get("DTMA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = await asyncpg.connect(admin_dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        postgres_required(str(exc))
    name = f"dtma_t_{secrets.token_hex(6)}"
    try:
        copied = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{copied}')
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        await drop_database(admin, name)
        await admin.close()


async def drop_database(admin: asyncpg.Connection, name: str, within: float = 30.0) -> None:
    """DROP DATABASE, retried while a process we may not terminate (autovacuum, say) is in it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def open_migrated_store(url: str, catalogue: Catalogue | None = None) -> EventStore:
    engine = create_engine(url)
    await migrations.upgrade(engine)
    return await EventStore.open(url, engine=engine, catalogue=catalogue)
