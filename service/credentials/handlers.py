"""Credential commands: inject (from the body, values possibly sealed to our public key), rotate
and revoke (crypto-shredding). Plaintext lives only in memory here: what is appended is
ciphertext under a fresh data key per version, and the request hash kept for idempotency is
keyed."""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Any

from nacl.public import PrivateKey

from eventstore import keyring, times
from projections import credentials, events, groups
from service import errors
from service.backend import client
from service.credentials import decisions, fetch, values
from service.handling import appending, commands, context


def keyed_request_hash(private: PrivateKey, method: str, path: str, body: bytes) -> str:
    """Like the plain request hash, but keyed: a body with secrets leaves no guessable trace."""
    message = b"\n".join([method.encode(), path.encode(), body])
    return hmac.new(bytes(private), message, hashlib.sha256).hexdigest()


def expiry(text: str | None) -> str | None:
    """An ISO 8601 time (with its zone) in the log's format; 422 otherwise."""
    if text is None:
        return None
    try:
        return times.format_time(times.parse_time(text))
    except ValueError:
        raise errors.ValidationFailedError(
            "expirationTime must be an ISO 8601 time with a zone",
            details=[{"field": "expirationTime", "message": "e.g. 2026-12-01T00:00:00Z"}],
        ) from None


async def inject(
    ctx: context.CommandContext,
    command: commands.InjectCredentials,
    meta: context.CommandMeta,
    *,
    ring: keyring.KeyRing,
    backend: client.BackendClient | None = None,
) -> dict[str, Any]:
    """Refusals first (404 server, 422 body, 409 agent), then the values from the body or the
    backend, sealed and recorded as the server's next version."""
    replayed = await appending.replay_if_known(ctx, meta)  # before any key is made
    if replayed is not None:
        return replayed
    await ctx.runner.current()  # never decide on stale state
    server = decisions.server_to_inject(ctx.runner.state(groups.PROJECTION), command)
    private = await ring.box_keypair()
    given = None if command.credentials is None else _opened(command.credentials, private, server)
    expires_at = expiry(command.expiration_time)
    state = ctx.runner.state(credentials.PROJECTION)
    decisions.refuse_another_agent(state, command.mcp_server_id, command.agent_id)
    source: decisions.Source = "request" if given is not None else "backend"
    if given is None:
        given = _opened(await fetch.fetched(backend, server, command.agent_id), private, server)
    return await record_version(
        ctx, ring, command.mcp_server_id, command.agent_id, given, source, expires_at, meta
    )


def _opened(
    spec: commands.CredentialsSpec, private: PrivateKey, server: groups.ServerState
) -> values.PlainVersion:
    """The version in plaintext, sealed values opened; a name the server declares keeps the
    mode it declares. 422 for what is not acceptable."""
    modes = {r.name: r.mode for r in server.spec.credential_requirements}
    return values.from_request(spec, private, modes)


async def record_version(
    ctx: context.CommandContext,
    ring: keyring.KeyRing,
    server_id: str,
    agent_id: str,
    version: values.PlainVersion,
    source: decisions.Source,
    expires_at: str | None,
    meta: context.CommandMeta,
) -> dict[str, Any]:
    """Seal `version` under a fresh data key and append it as the server's next version."""
    sealed = await values.seal(ring, version)
    stream = credentials.stream_of(server_id)

    def decided() -> appending.Decided:
        state = ctx.runner.state(credentials.PROJECTION)
        event = decisions.inject(state, server_id, agent_id, sealed, source, expires_at)
        answer = {"mcpServerId": server_id, "version": event.version}
        return appending.Decided(stream, [event], state.stream_versions.get(stream, 0), answer)

    return await appending.decide_and_append(
        ctx, meta, appending.on_read_models(ctx, decided), stream
    )


async def rotate(
    ctx: context.CommandContext,
    command: commands.RotateCredentials,
    meta: context.CommandMeta,
    *,
    ring: keyring.KeyRing,
    backend: client.BackendClient | None = None,
) -> dict[str, Any]:
    """A new version for the agent the current one is bound to; the old one is retired (its
    files are overwritten or, if not in the new version, left until revoked)."""
    await ctx.runner.current()  # never decide on stale state
    agent_id = decisions.agent_to_rotate(ctx.runner.state(credentials.PROJECTION), command)
    injection = commands.InjectCredentials(
        mcp_server_id=command.mcp_server_id,
        agent_id=agent_id,
        credentials=command.credentials,
        expiration_time=command.expiration_time,
    )
    return await inject(ctx, injection, meta, ring=ring, backend=backend)


async def revoke(
    ctx: context.CommandContext,
    command: commands.RevokeCredentials,
    meta: context.CommandMeta,
    *,
    ring: keyring.KeyRing,
) -> dict[str, Any]:
    """Record the revocation, then destroy the data keys: the log keeps only ciphertext that
    nothing can open any more. (The injector takes the files out of the replicas.)"""
    stream = credentials.stream_of(command.mcp_server_id)
    revoked: list[events.CredentialsRevoked] = []  # what was decided last

    def decided() -> appending.Decided:
        state = ctx.runner.state(credentials.PROJECTION)
        revoked.append(decisions.revoke(state, command))
        answer = {"versions": list(revoked[-1].versions)}
        return appending.Decided(
            stream, [revoked[-1]], state.stream_versions.get(stream, 0), answer
        )

    answer = await appending.decide_and_append(
        ctx, meta, appending.on_read_models(ctx, decided), stream
    )
    for key_id in revoked[-1].key_ids if revoked else ():
        await ring.destroy(key_id)
    return answer


def command_handlers(
    ring: keyring.KeyRing, backend: client.BackendClient | None
) -> dict[type[commands.Command], context.Handler]:
    """The credential commands' table, with the key ring and the backend (if any) they use."""
    return {
        commands.InjectCredentials: functools.partial(inject, ring=ring, backend=backend),
        commands.RotateCredentials: functools.partial(rotate, ring=ring, backend=backend),
        commands.RevokeCredentials: functools.partial(revoke, ring=ring),
    }
