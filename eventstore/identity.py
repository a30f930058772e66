"""A database's names for itself: made once, at the first request, and the same ever after
(a restart, a restore of the database); concurrent first requests agree on one."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import schema
from eventstore.errors import StoreUnavailableError
from eventstore.times import format_time

IDENTITIES = schema.identities.c


async def identity(engine: AsyncEngine, name: str) -> str:
    """The value this database holds for `name`; a new random one (16 hex digits) if none.

    Raises StoreUnavailableError."""
    insert = postgres_insert if engine.dialect.name == "postgresql" else sqlite_insert
    made = insert(schema.identities).values(
        name=name, value=secrets.token_hex(8), created_at=format_time(datetime.now(UTC))
    )
    try:
        async with engine.begin() as connection:
            await connection.execute(made.on_conflict_do_nothing(index_elements=[IDENTITIES.name]))
            found = await connection.execute(
                sa.select(IDENTITIES.value).where(IDENTITIES.name == name)
            )
            return str(found.scalar_one())
    except (sa.exc.DBAPIError, OSError) as exc:
        raise StoreUnavailableError(f"the database is unavailable: {type(exc).__name__}") from exc
