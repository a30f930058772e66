"""The tokens `dtma token add` stores (only their SHA-256), and the table the service checks
bearer tokens against: the configured tokens and the stored ones, read again every few seconds
so that an added or revoked token counts without a restart."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from eventstore import schema
from eventstore.times import format_time
from service.access.tokens import Token

logger = logging.getLogger(__name__)

TOKENS = schema.api_tokens.c
REFRESH_S = 5.0  # a revoked token is refused within this
MISS_REFRESH_S = 1.0  # an unknown token reads the table again at most this often


class TokenNameTakenError(Exception):
    """A token of this name is stored already."""


async def add(engine: AsyncEngine, token: Token) -> None:
    row = {
        "name": token.name,
        "role": token.role,
        "agent_id": token.agent_id,
        "token_sha256": token.sha256,
        "created_at": format_time(datetime.now(UTC)),
    }
    try:
        async with engine.begin() as connection:
            await connection.execute(schema.api_tokens.insert().values(**row))
    except IntegrityError:
        raise TokenNameTakenError(token.name) from None


async def listed(engine: AsyncEngine) -> list[dict[str, str | None]]:
    """Every stored token's name, role, agent id and creation time (never its hash)."""
    query = sa.select(TOKENS.name, TOKENS.role, TOKENS.agent_id, TOKENS.created_at).order_by(
        TOKENS.name
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        {"name": r.name, "role": r.role, "agentId": r.agent_id, "createdAt": r.created_at}
        for r in rows
    ]


async def revoke(engine: AsyncEngine, name: str) -> bool:
    async with engine.begin() as connection:
        result = await connection.execute(schema.api_tokens.delete().where(TOKENS.name == name))
    return bool(result.rowcount)


async def stored(engine: AsyncEngine) -> list[Token]:
    query = sa.select(TOKENS.name, TOKENS.role, TOKENS.token_sha256, TOKENS.agent_id)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [Token(r.name, r.role, r.token_sha256, r.agent_id) for r in rows]


class TokenTable:
    """Which token a caller holds, compared in constant time with every known digest."""

    def __init__(self, configured: list[Token], engine: AsyncEngine) -> None:
        self._configured = configured
        self._engine = engine
        self._tokens = list(configured)
        self._read_at = -REFRESH_S
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._tokens)

    async def refresh(self) -> None:
        names = {t.name for t in self._configured}
        extra = []
        for token in await stored(self._engine):
            if token.name in names:
                logger.warning("stored token %r is shadowed by a configured one", token.name)
            else:
                extra.append(token)
        self._tokens = [*self._configured, *extra]
        self._read_at = time.monotonic()

    async def identify(self, sha256: str) -> Token | None:
        found = self._match(sha256)
        read_at = self._read_at
        age = time.monotonic() - read_at
        if age > REFRESH_S or (found is None and age > MISS_REFRESH_S):
            async with self._lock:
                if self._read_at == read_at:  # nobody read it again while we waited
                    await self.refresh()
            found = self._match(sha256)
        return found

    def _match(self, sha256: str) -> Token | None:
        found = None
        for token in self._tokens:  # every one, so the time taken says nothing of a match
            if hmac.compare_digest(token.sha256, sha256):
                found = token
        return found
