"""Alembic migrations for the store's schema; `upgrade()` brings a database to head, and
`require_head()` refuses one that is not there, for readers that never migrate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

HERE = Path(__file__).resolve().parent


class RevisionError(Exception):
    """The database's schema is not the one this code reads; the message names both."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the engine's database to `revision`, in one transaction."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


def _upgrade(connection: Any, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/versions has no revision"
    return head


async def require_head(engine: AsyncEngine) -> None:
    """Raise RevisionError unless the database is at the head revision. Only reads."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_stored_revision)
    head = head_revision()
    if current != head:
        raise RevisionError(_mismatch(current, head))


def _stored_revision(connection: Any) -> str | None:
    # Read without alembic's MigrationContext, which logs its setup on every use.
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    revision: str | None = connection.execute(
        sa.text("SELECT version_num FROM alembic_version")
    ).scalar()
    return revision


def _mismatch(current: str | None, head: str) -> str:
    script = ScriptDirectory.from_config(alembic_config())
    if current is None:
        found = "has no schema (no alembic revision)"
    elif current in {revision.revision for revision in script.walk_revisions()}:
        found = f"is at schema revision {current}"
    else:
        return (
            f"the database is at schema revision {current}, which this dtma does not know "
            f"(it reads {head}): read it with the dtma that wrote it"
        )
    return (
        f"the database {found}, and this dtma reads revision {head}; reading never migrates: "
        f"bring it (or a copy) to {head} with `dtma migrate` first"
    )
