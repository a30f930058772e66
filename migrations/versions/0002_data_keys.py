"""Data keys, wrapped by the master key; destroying one forgets what it encrypted.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.Text(), nullable=True),
        sa.Column("master_fingerprint", sa.String(16), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("destroyed_at", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_data_keys"),
    )


def downgrade() -> None:
    op.drop_table("data_keys")
