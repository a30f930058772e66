"""Credential commands: inject (from the body, values possibly sealed to our public key) and
revoke (crypto-shredding). Plaintext lives only in memory here: what is appended is ciphertext
under a fresh data key per version, and the request hash kept for idempotency is keyed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, Literal

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from eventstore.keyring import KeyRing
from projections import credentials, events, groups
from service import commands, errors
from service.backend import BackendClient, BackendError
from service.handlers import CommandContext, CommandMeta, replay_if_known

STREAM_PREFIX = credentials.STREAM_PREFIX
Secret = tuple[str, Literal["env", "file"], Literal["api_key", "certificate"], bytes]


def stream_of(server_id: str) -> str:
    return STREAM_PREFIX + server_id


def keyed_request_hash(private: PrivateKey, method: str, path: str, body: bytes) -> str:
    """Like the plain request hash, but keyed: a body with secrets leaves no guessable trace."""
    message = b"\n".join([method.encode(), path.encode(), body])
    return hmac.new(bytes(private), message, hashlib.sha256).hexdigest()


def plaintexts(spec: commands.CredentialsSpec, private: PrivateKey) -> list[Secret]:
    """(name, mode, kind, value) for every secret, sealed values opened. 422 names the field of
    a sealed value that does not open, or a name given twice; never a value."""
    found: list[Secret] = []
    for index, key in enumerate(spec.api_keys):
        value = _open(key.value, private, f"credentials.apiKeys.{index}.value")
        found.append((key.name, key.mode, "api_key", value))
    for index, cert in enumerate(spec.certificates):
        value = _open(cert.pem, private, f"credentials.certificates.{index}.pem")
        found.append((cert.name, "file", "certificate", value))
    for name, mode, _kind, value in found:
        if mode == "env" and not _env_safe(value):
            raise errors.ValidationFailedError(
                "an env credential must be UTF-8 text without NUL",
                details=[{"field": "credentials", "message": f"{name!r} cannot be a variable"}],
            )
    names = [name for name, *_ in found]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise errors.ValidationFailedError(
            "each credential name may appear once",
            details=[
                {"field": "credentials", "message": f"{n!r} is given twice"} for n in duplicates
            ],
        )
    if not found:
        raise errors.ValidationFailedError(
            "no credentials given",
            details=[
                {"field": "credentials", "message": "give at least one apiKey or certificate"}
            ],
        )
    return found


def _env_safe(value: bytes) -> bool:
    try:
        return "\x00" not in value.decode()
    except UnicodeDecodeError:
        return False


def _open(value: str | commands.Sealed, private: PrivateKey, field: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    try:
        return SealedBox(private).decrypt(base64.b64decode(value.sealed, validate=True))
    except (CryptoError, binascii.Error, ValueError):
        raise errors.ValidationFailedError(
            "a sealed value could not be opened with this service's key",
            details=[{"field": field, "message": "not sealed to GET /credentials/public-key"}],
        ) from None


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
    head, _ = await ctx.store.head()
    await ctx.runner.wait_for(head, within=5.0)
    server = ctx.runner.state(groups.PROJECTION).servers.get(command.mcp_server_id)
    if server is None:
        raise errors.NotFoundError(f"no MCP server {command.mcp_server_id!r}")
    source: Literal["request", "backend"] = "request"
    spec = command.credentials
    if spec is None:
        spec, source = await fetched(backend, server, command.agent_id), "backend"
    private = await ring.box_keypair()
    secrets = plaintexts(spec, private)
    expires_at = expiry(command.expiration_time)
    key_id = await ring.create()
    sealed = tuple(
        [
            events.SealedSecret(
                name=name, mode=mode, kind=kind, ciphertext=await ring.encrypt(key_id, value)
            )
            for name, mode, kind, value in secrets
        ]
    )
    state = ctx.runner.state(credentials.PROJECTION)
    version = state.next_version(command.mcp_server_id)
    event = events.CredentialsInjected(
        server_id=command.mcp_server_id,
        agent_id=command.agent_id,
        version=version,
        key_id=key_id,
        secrets=sealed,
        source=source,
        expires_at=expires_at,
    )
    answer = {"mcpServerId": command.mcp_server_id, "version": version}
    stream = stream_of(command.mcp_server_id)
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
    head, _ = await ctx.store.head()
    await ctx.runner.wait_for(head, within=5.0)
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
    head, _ = await ctx.store.head()
    await ctx.runner.wait_for(head, within=5.0)
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
    stream = stream_of(command.mcp_server_id)
    appended = await ctx.store.append(
        stream,
        [ctx.catalogue.to_new_event(event)],
        expected_version=state.stream_versions.get(stream, 0),
        idempotency_key=meta.idempotency_key,
        metadata=meta.metadata(),
        request_hash=meta.request_hash,
        result={},
    )
    for key_id in event.key_ids:
        await ring.destroy(key_id)
    return {"position": appended.last_position, "versions": list(event.versions)}


def status_json(state: credentials.CredentialsState, now: datetime) -> list[dict[str, Any]]:
    """GET /credentials/status: every server's current version — names, never values."""
    found = []
    for server_id, server in sorted(state.servers.items()):
        version = server.versions.get(server.current) if server.current is not None else None
        if version is None:
            continue
        expired = version.expires_at is not None and version.expires_at < now.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        status = "expired" if expired and version.status != "revoked" else version.status
        found.append(
            {
                "mcpServerId": server_id,
                "agentId": version.agent_id,
                "version": version.version,
                "names": list(version.names),
                "modes": version.modes,
                "status": status,
                "injectedAt": version.injected_at,
                "expiresAt": version.expires_at,
                "appliedTo": sorted(version.applied),
                "lastError": version.last_error,
            }
        )
    return found
