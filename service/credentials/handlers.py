"""Credential commands: inject (from the body, values possibly sealed to our public key) and
revoke (crypto-shredding). Plaintext lives only in memory here: what is appended is ciphertext
under a fresh data key per version, and the request hash kept for idempotency is keyed."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any, Literal

from nacl.public import PrivateKey

from eventstore import times
from eventstore.keyring import KeyRing
from projections import containers, credentials, events, groups
from service import errors
from service.backend.client import BackendClient, BackendError
from service.credentials import values
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
        return times.format_time(times.parse_time(text))
    except ValueError:
        raise errors.ValidationFailedError(
            "expirationTime must be an ISO 8601 time with a zone",
            details=[{"field": "expirationTime", "message": "e.g. 2026-12-01T00:00:00Z"}],
        ) from None


BACKEND_PATH = "/get-agent-tool-credentials"


async def fetched(
    backend: BackendClient | None, server: groups.ServerState, agent_id: str
) -> commands.CredentialsSpec:
    """The backend's secrets for this agent and server, as if given in the body. A name the
    server declares in `credentialRequirements` keeps its mode there; others are `env`."""
    if backend is None:
        raise errors.ValidationFailedError(
            "no credentials given, and no backend is configured to fetch them from",
            details=[{"field": "credentials", "message": "required without DTMA_BACKEND_URL"}],
        )
    instance = server.spec.legacy.account_tool_instance_id if server.spec.legacy else server.spec.id
    try:
        answer = await backend.post_with_retries(
            BACKEND_PATH, {"agentId": agent_id, "accountToolInstanceId": instance}, attempts=3
        )
    except BackendError as exc:
        raise errors.UnavailableError(
            f"the backend did not supply the credentials: {exc}", code="backend_unavailable"
        ) from None
    secrets = answer.get("secrets") if isinstance(answer, dict) else None
    if not isinstance(secrets, dict):
        raise errors.UnavailableError(
            "the backend's answer has no secrets object", code="backend_unavailable"
        )
    modes = {r.name: r.mode for r in server.spec.credential_requirements}
    try:
        return commands.CredentialsSpec(
            api_keys=[
                commands.ApiKeySpec(name=name, value=value, mode=modes.get(name, "env"))
                for name, value in sorted(secrets.items())
                if value is not None
            ]
        )
    except ValueError:  # a name or value we would refuse from a caller too; never echoed
        raise errors.UnavailableError(
            "the backend supplied a credential name or value that is not acceptable",
            code="backend_unavailable",
        ) from None


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
    await ctx.runner.current()  # never decide on stale state
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
        spec = await fetched(backend, server, command.agent_id)
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
    await ctx.runner.current()  # never decide on stale state
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
    await ctx.runner.current()  # never decide on stale state
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


def _in_every_replica(version: credentials.Version, instances: list[containers.Instance]) -> bool:
    running = (i for i in instances if i.state == "running")
    return all(version.in_place(i.replica, i.container_id) for i in running)


Shown = Literal["pending", "injected", "failed", "expired", "retired", "revoked"]


def shown_status(
    version: credentials.Version, instances: list[containers.Instance], now: datetime
) -> Shown:
    """The status GET /credentials/status shows. A version with files is `injected` once they
    are in every running replica, `pending` until then."""
    if version.expired(now) and version.status != "revoked":
        return "expired"
    if version.status == "injected" and not _in_every_replica(version, instances):
        return "pending"
    return version.status
