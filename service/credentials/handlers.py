"""Credential commands: inject (from the body, values possibly sealed to our public key) and
revoke (crypto-shredding). Plaintext lives only in memory here: what is appended is ciphertext
under a fresh data key per version, and the request hash kept for idempotency is keyed."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, Literal

from nacl.public import PrivateKey

from eventstore.keyring import KeyRing
from projections import credentials, events, groups
from service import errors
from service.backend.client import BackendClient
from service.credentials import fetch, values
from service.handling import commands
from service.handling.handlers import CommandContext, CommandMeta, replay_if_known

Source = Literal["request", "backend", "oauth", "expiry"]


def keyed_request_hash(private: PrivateKey, method: str, path: str, body: bytes) -> str:
    """Like the plain request hash, but keyed: a body with secrets leaves no guessable trace."""
    message = b"\n".join([method.encode(), path.encode(), body])
    return hmac.new(bytes(private), message, hashlib.sha256).hexdigest()


def expiry(text: str | None) -> str | None:
    """An ISO 8601 time (with its zone) in the log's format; 422 otherwise."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise errors.ValidationFailedError(
            "expirationTime must be an ISO 8601 time with a zone",
            details=[{"field": "expirationTime", "message": "e.g. 2026-12-01T00:00:00Z"}],
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def inject(
    ctx: CommandContext,
    ring: KeyRing,
    command: commands.InjectCredentials,
    meta: CommandMeta,
    backend: BackendClient | None = None,
) -> dict[str, Any]:
    replayed = await replay_if_known(ctx, meta)
    if replayed is not None:
        return replayed
    await ctx.runner.current(within=5.0)  # never decide on stale state
    server = ctx.runner.state(groups.PROJECTION).servers.get(command.mcp_server_id)
    if server is None:
        raise errors.NotFoundError(f"no MCP server {command.mcp_server_id!r}")
    modes = {r.name: r.mode for r in server.spec.credential_requirements}
    private = await ring.box_keypair()
    given = (
        None
        if command.credentials is None
        else values.from_request(command.credentials, private, modes)
    )  # a bad body is 422 before anything else
    expires_at = expiry(command.expiration_time)
    current = ctx.runner.state(credentials.PROJECTION).of(command.mcp_server_id).active()
    if current is not None and current.agent_id != command.agent_id:
        raise errors.ConflictError(
            f"the credentials of {command.mcp_server_id!r} are bound to another agent; "
            "revoke them (DELETE /credentials/{id}) before injecting for a new one",
            code="bound_to_another_agent",
        )
    source: Source = "request"
    version = given
    if version is None:
        spec = await fetch.fetched(backend, server, command.agent_id)
        version, source = values.from_request(spec, private, modes), "backend"
    return await record_version(
        ctx,
        ring,
        command.mcp_server_id,
        command.agent_id,
        version,
        source,
        expires_at,
        meta,
    )


async def record_version(
    ctx: CommandContext,
    ring: KeyRing,
    server_id: str,
    agent_id: str,
    version: values.PlainVersion,
    source: Source,
    expires_at: str | None,
    meta: CommandMeta,
) -> dict[str, Any]:
    """Seal `version` under a fresh data key and append it as the server's next version."""
    key_id, secrets, grants = await values.seal(ring, version)
    state = ctx.runner.state(credentials.PROJECTION)
    number = state.next_version(server_id)
    event = events.CredentialsInjected(
        server_id=server_id,
        agent_id=agent_id,
        version=number,
        key_id=key_id,
        secrets=secrets,
        source=source,
        expires_at=expires_at,
        oauth=grants,
    )
    answer = {"mcpServerId": server_id, "version": number}
    return await _append(ctx, state, event, meta, answer)


async def _append(
    ctx: CommandContext,
    state: credentials.CredentialsState,
    event: events.CredentialsInjected | events.CredentialsRevoked,
    meta: CommandMeta,
    answer: dict[str, Any],
) -> dict[str, Any]:
    """Append a command's event to the server's credentials stream, at its known version."""
    stream = credentials.stream_of(event.server_id)
    appended = await ctx.store.append(
        stream,
        [ctx.catalogue.to_new_event(event)],
        expected_version=state.stream_versions.get(stream, 0),
        idempotency_key=meta.idempotency_key,
        metadata=meta.metadata(),
        request_hash=meta.request_hash,
        result=answer,
    )
    return {**(appended.result or answer), "position": appended.last_position}


async def rotate(
    ctx: CommandContext,
    ring: KeyRing,
    command: commands.RotateCredentials,
    meta: CommandMeta,
    backend: BackendClient | None = None,
) -> dict[str, Any]:
    """A new version for the agent the current one is bound to; the old one is retired (its
    files are overwritten or, if not in the new version, left until revoked)."""
    await ctx.runner.current(within=5.0)  # never decide on stale state
    current = ctx.runner.state(credentials.PROJECTION).of(command.mcp_server_id).active()
    if current is None:
        raise errors.NotFoundError(
            f"{command.mcp_server_id!r} has no credentials to rotate; inject them first"
        )
    injection = commands.InjectCredentials(
        mcp_server_id=command.mcp_server_id,
        agent_id=current.agent_id,
        credentials=command.credentials,
        expiration_time=command.expiration_time,
    )
    return await inject(ctx, ring, injection, meta, backend)


async def revoke(
    ctx: CommandContext, ring: KeyRing, command: commands.RevokeCredentials, meta: CommandMeta
) -> dict[str, Any]:
    """Record the revocation, then destroy the data keys: the log keeps only ciphertext that
    nothing can open any more. (The injector takes the files out of the replicas.)"""
    replayed = await replay_if_known(ctx, meta)
    if replayed is not None:
        return replayed
    await ctx.runner.current(within=5.0)  # never decide on stale state
    state = ctx.runner.state(credentials.PROJECTION)
    server = state.of(command.mcp_server_id)
    live = [v for v in server.versions.values() if not v.forgotten]
    if not live:
        raise errors.NotFoundError(f"no credentials of {command.mcp_server_id!r} to revoke")
    event = events.CredentialsRevoked(
        server_id=command.mcp_server_id,
        versions=tuple(v.version for v in live),
        key_ids=tuple(v.key_id for v in live),
    )
    answer = await _append(ctx, state, event, meta, {"versions": list(event.versions)})
    for key_id in event.key_ids:
        await ring.destroy(key_id)
    return answer
