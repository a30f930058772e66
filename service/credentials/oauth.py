"""Keeps credentials fresh: OAuth access tokens are obtained and refreshed before they expire
(refresh-token grant, or client credentials without a refresh token), and a credential past its
`expirationTime` is fetched anew from the backend when there is one. Each refresh is a new
credential version, injected like any other; failures are events, retried with backoff."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import aiohttp

from eventstore import times
from eventstore.errors import StoreError
from eventstore.keyring import KeyRing, KeyringError
from projections import credentials, events, groups
from service import errors, loops, outbound
from service.backend.client import BackendClient
from service.credentials import values
from service.credentials.handlers import fetched, record_version
from service.handling.handlers import CommandContext, CommandMeta

logger = logging.getLogger(__name__)

TICK_S = 1.0
MAX_MARGIN_S = 60.0
RETRIES = loops.Doubling(first=1.0, ceiling=60.0)  # per server and provider
TOKEN_TIMEOUT = aiohttp.ClientTimeout(total=15)
OAUTH_ERROR = re.compile(r"^[a-z_]{1,40}$")
STRICT = outbound.OutboundPolicy()  # no host allowed past the checks


class TokenRequestError(Exception):
    """The token endpoint did not give a token; the message is safe to record."""


def due(expires_at: str | None, issued_at: str, now: float) -> bool:
    """Refresh once less than half its lifetime, or a minute, is left. Pure."""
    if expires_at is None:
        return False
    end = times.parse_time(expires_at).timestamp()
    lifetime = end - times.parse_time(issued_at).timestamp()
    return end - now <= min(MAX_MARGIN_S, max(lifetime, 0.0) / 2)


def token_form(grant: values.PlainGrant) -> dict[str, str]:
    form = {"client_id": grant.client_id, "client_secret": grant.client_secret.decode()}
    if grant.refresh_token is not None:
        form |= {"grant_type": "refresh_token", "refresh_token": grant.refresh_token.decode()}
    else:
        form["grant_type"] = "client_credentials"
    if grant.scopes:
        form["scope"] = " ".join(grant.scopes)
    return form


async def request_token(
    session: aiohttp.ClientSession, grant: values.PlainGrant, policy: outbound.OutboundPolicy
) -> tuple[bytes, float | None, bytes | None]:
    """(access token, seconds it lasts, a rotated refresh token) from the token endpoint. An
    endpoint the policy refuses is never asked: what answers there is no one's to learn."""
    try:
        policy.check_url(grant.token_endpoint)
    except outbound.OutboundRefusedError as exc:
        raise TokenRequestError(f"token endpoint refused: {exc}") from None
    try:
        async with session.post(
            grant.token_endpoint,
            data=token_form(grant),
            headers={"Accept": "application/json"},
            timeout=TOKEN_TIMEOUT,
            allow_redirects=False,
        ) as response:
            body = await _json(response) if response.status < 500 else None
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TokenRequestError(f"token endpoint unreachable ({type(exc).__name__})") from None
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        code = body.get("error") if isinstance(body, dict) else None
        named = f": {code}" if isinstance(code, str) and OAUTH_ERROR.match(code) else ""
        raise TokenRequestError(f"token endpoint answered HTTP {status}{named}")
    lasts = body.get("expires_in")
    refresh = body.get("refresh_token")
    return (
        body["access_token"].encode(),
        float(lasts) if isinstance(lasts, int | float) else None,
        refresh.encode() if isinstance(refresh, str) else None,
    )


async def _json(response: aiohttp.ClientResponse) -> Any:
    """The body as JSON, or None if it is not (a redirect's text, say)."""
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


class Refresher:
    def __init__(
        self,
        ctx: CommandContext,
        ring: KeyRing,
        backend: BackendClient | None = None,
        policy: outbound.OutboundPolicy = STRICT,
    ) -> None:
        self._ctx = ctx
        self._ring = ring
        self._backend = backend
        self._policy = policy
        self._retry = loops.Backoff(RETRIES)  # (server id, provider; "" for the backend)

    async def run(self) -> None:
        async with outbound.session(self._policy) as session:
            while True:
                try:
                    await self.refresh_once(session)
                except (errors.ServiceError, StoreError, KeyringError) as exc:
                    logger.warning("credential refresh paused: %s", type(exc).__name__)
                runner = self._ctx.runner
                await runner.wait_for(runner.position + 1, within=TICK_S)

    async def refresh_once(self, session: aiohttp.ClientSession) -> None:
        await self._ctx.runner.current()  # stopped or behind: nothing renewed on stale state
        now = time.time()
        for server_id, server in self._ctx.runner.state(credentials.PROJECTION).servers.items():
            version = server.active()
            if version is None:
                continue
            if due(version.expires_at, version.injected_at, now) and self._retry.due(
                (server_id, ""), now
            ):
                await self._renew_from_backend(server_id, version, now)
                continue
            tokens = {s.name: s for s in version.secrets if s.kind == "oauth_access_token"}
            for grant in version.oauth:
                token = tokens.get(values.access_token_name(grant.provider))
                stale = token is None or due(token.expires_at, version.injected_at, now)
                if stale and self._retry.due((server_id, grant.provider), now):
                    await self._refresh(session, server_id, version, grant.provider, now)

    async def _refresh(
        self,
        session: aiohttp.ClientSession,
        server_id: str,
        version: credentials.Version,
        provider: str,
        now: float,
    ) -> None:
        plain = await values.unseal(self._ring, version)
        grant = next(g for g in plain.grants if g.provider == provider)
        try:
            token, lasts, rotated = await request_token(session, grant, self._policy)
        except TokenRequestError as exc:
            self._retry.failed((server_id, provider), now)
            failed = events.OAuthRefreshFailed(
                server_id=server_id, version=version.version, provider=provider, reason=str(exc)
            )
            await self._ctx.store.append(
                "oauth-" + server_id,
                [self._ctx.catalogue.to_new_event(failed)],
                None,
                metadata=_system_meta(self._ctx.runner.position).metadata(),
            )
            return
        self._retry.forgive([(server_id, provider)])
        expires = None if lasts is None else times.format_epoch(now + lasts)
        renewed = grant if rotated is None else _with_refresh(grant, rotated)
        await record_version(
            self._ctx,
            self._ring,
            server_id,
            version.agent_id,
            plain.with_token(renewed, token, expires),
            "oauth",
            version.expires_at,
            _system_meta(self._ctx.runner.position),
        )

    async def _renew_from_backend(
        self, server_id: str, version: credentials.Version, now: float
    ) -> None:
        """Past (or near) its expiry: fetch a new version from the backend, if there is one."""
        server = self._ctx.runner.state(groups.PROJECTION).servers.get(server_id)
        if self._backend is None or server is None:
            self._retry.failed((server_id, ""), now)
            return
        try:
            spec = await fetched(self._backend, server, version.agent_id)
            modes = {r.name: r.mode for r in server.spec.credential_requirements}
            renewed = values.from_request(spec, await self._ring.box_keypair(), modes)
        except errors.ServiceError as exc:
            logger.warning("could not renew the expired credentials of %s: %s", server_id, exc.code)
            self._retry.failed((server_id, ""), now)
            return
        self._retry.forgive([(server_id, "")])
        await record_version(
            self._ctx,
            self._ring,
            server_id,
            version.agent_id,
            renewed,
            "expiry",
            None,
            _system_meta(self._ctx.runner.position),
        )


def _with_refresh(grant: values.PlainGrant, refresh_token: bytes) -> values.PlainGrant:
    return values.PlainGrant(
        provider=grant.provider,
        client_id=grant.client_id,
        scopes=grant.scopes,
        token_endpoint=grant.token_endpoint,
        client_secret=grant.client_secret,
        refresh_token=refresh_token,
        mode=grant.mode,
    )


def _system_meta(acted_on: int) -> CommandMeta:
    """A refresh is due by the clock: a new correlation, caused by the state as of `acted_on`."""
    return CommandMeta(
        actor="system",
        correlation_id=str(uuid.uuid4()),
        causation_id=str(acted_on),
        component="credential-refresher",
    )
