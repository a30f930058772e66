"""Alembic environment: runs on the connection handed over by `migrations.upgrade()`."""

from __future__ import annotations

from alembic import context

from eventstore.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `dtma migrate`, which provides the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
