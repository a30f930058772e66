"""Database engines for the store: the async URL for a database URL, and an engine with the
connection settings each database needs (SQLite's pragmas and file mode, read-only sessions)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from eventstore import readonly

logger = logging.getLogger(__name__)


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for `sqlite:///file` or `postgresql://...`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def create_engine(url: str, *, read_only: bool = False) -> AsyncEngine:
    """An async engine; on SQLite every connection gets WAL, synchronous=FULL, a busy timeout.

    `read_only`: PostgreSQL transactions refuse writes and SQLite connections set only the busy
    timeout; give a SQLite URL from `readonly.sqlite_url`, which opens the file read-only.
    """
    # PostgreSQL connections die with a server restart: each is checked as it leaves the pool,
    # so the first request after an outage is served, not refused
    postgres = url.startswith("postgresql")
    connect_args: dict[str, Any] = {}
    if postgres and read_only:
        connect_args["server_settings"] = readonly.POSTGRES_SERVER_SETTINGS
    engine = create_async_engine(async_url(url), pool_pre_ping=postgres, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        from eventstore.sqlite import PRAGMAS, keep_private
        from eventstore.sqlite_connections import guard

        pragmas = readonly.SQLITE_PRAGMAS if read_only else PRAGMAS
        if not read_only:
            for name in keep_private(make_url(url).database or ""):
                logger.warning("%s was open to group or others; its mode is now 0600", name)

        @sa_event.listens_for(engine.sync_engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            guard(dbapi_connection)
            cursor = dbapi_connection.cursor()
            for pragma in pragmas:
                cursor.execute(pragma)
            cursor.close()

    return engine
