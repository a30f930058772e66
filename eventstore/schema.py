"""The single SQLAlchemy MetaData and the store's tables. Migrations target this metadata."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# On SQLite an INTEGER PRIMARY KEY is the rowid itself: no second index to maintain.
Position = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=False),
    Column("stream_id", String(200), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("type", String(200), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("stream_id", "stream_version"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("stream_id", String(200), nullable=False),
    Column("positions", Text, nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("result", Text, nullable=True),
    Column("recorded_at", String(32), nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", String(32), nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("fold_version", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("taken_at", String(32), nullable=False),
)

# Data keys for field encryption, wrapped by the master key. Mutable on purpose: destroying a
# key (wrapped -> NULL) forgets every secret it encrypted ("crypto-shredding").
data_keys = Table(
    "data_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("wrapped", Text, nullable=True),
    Column("master_fingerprint", String(16), nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("destroyed_at", String(32), nullable=True),
)

# Signed checkpoints of the hash chain (eventstore.signing). Kept beside the log, not in it:
# the chain stays what it is, and a checkpoint can be checked against any copy of the log.
signed_checkpoints = Table(
    "signed_checkpoints",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("signed_at", String(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)

# Names a database gives itself once, the first time it is asked (eventstore.identity): the
# same after a restart or a restore, different for another database.
identities = Table(
    "identities",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
)

# API tokens of the HTTP service, by name: only each token's SHA-256 is kept (tokens are random
# and long, so a fast hash suffices). Mutable on purpose: a revoked token's row is deleted.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("agent_id", String(200), nullable=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
)
