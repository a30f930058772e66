"""Migrations bring a fresh database to head, and head matches the SQLAlchemy metadata."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import migrations
from eventstore.engines import create_engine
from eventstore.schema import metadata


async def test_a_fresh_database_migrated_to_head_matches_the_metadata(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrations.upgrade(engine)
        await migrations.upgrade(engine)  # a second run is a no-op

        def differences(connection: Any) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(connection), metadata))

        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
        head = ScriptDirectory.from_config(migrations.alembic_config()).get_current_head()
        assert head is not None and await migrations.current_revision(engine) == head
    finally:
        await engine.dispose()
