"""Registry credentials: stored (the password sealed under a fresh data key, perhaps sealed to
our public key on the wire), listed without passwords, and forgotten by destroying the key."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox
from pydantic import Field

from eventstore.keyring import KeyRing
from projections import events, registries
from service import errors
from service.handling import commands
from service.handling.handlers import CommandContext, CommandMeta, replay_if_known

SERVER = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}(:[0-9]{1,5})?$"  # host[:port], as images name it
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


class StoreRegistryCredentials(commands.Command):
    """POST /registries."""

    server: Annotated[str, Field(pattern=SERVER)]
    username: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
    password: commands.SecretValue


def server_name(server: str) -> str:
    """One name per registry, as an image reference's first part names it."""
    lowered = server.lower()
    return "docker.io" if lowered in DOCKER_HUB else lowered


async def store(
    ctx: CommandContext, ring: KeyRing, command: StoreRegistryCredentials, meta: CommandMeta
) -> dict[str, Any]:
    """Seal the password under a fresh data key and append it; credentials they replace have
    their key destroyed."""
    replayed = await replay_if_known(ctx, meta)
    if replayed is not None:
        return replayed
    password = _opened(command.password, await ring.box_keypair())
    await ctx.runner.current()  # never decide on stale state
    state = ctx.runner.state(registries.PROJECTION)
    server = server_name(command.server)
    key_id = await ring.create()
    event = events.RegistryCredentialsStored(
        server=server,
        username=command.username,
        key_id=key_id,
        password=await ring.encrypt(key_id, password),
    )
    replaced = state.registries.get(server)
    answer = await _append(ctx, state, server, event, meta, {"server": server})
    if replaced is not None:
        await ring.destroy(replaced.key_id)
    return answer


async def forget(
    ctx: CommandContext, ring: KeyRing, server: str, meta: CommandMeta
) -> dict[str, Any]:
    """Record that they are forgotten, then destroy their key: the log keeps only ciphertext
    that nothing can open any more."""
    replayed = await replay_if_known(ctx, meta)
    if replayed is not None:
        return replayed
    await ctx.runner.current()
    state = ctx.runner.state(registries.PROJECTION)
    known = state.registries.get(server_name(server))
    if known is None:
        raise errors.NotFoundError(f"no credentials for registry {server!r}")
    event = events.RegistryCredentialsForgotten(server=known.server, key_id=known.key_id)
    answer = await _append(ctx, state, known.server, event, meta, {"server": known.server})
    await ring.destroy(known.key_id)
    return answer


def listing(state: registries.RegistriesState) -> list[dict[str, str]]:
    """GET /registries: servers and usernames, never a password."""
    return [
        {"server": r.server, "username": r.username, "storedAt": r.stored_at}
        for _, r in sorted(state.registries.items())
    ]


async def _append(
    ctx: CommandContext,
    state: registries.RegistriesState,
    server: str,
    event: events.Event,
    meta: CommandMeta,
    answer: dict[str, Any],
) -> dict[str, Any]:
    stream = registries.stream_of(server)
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


def _opened(value: str | commands.Sealed, private: PrivateKey) -> bytes:
    if isinstance(value, str):
        return value.encode()
    try:
        return SealedBox(private).decrypt(base64.b64decode(value.sealed, validate=True))
    except (CryptoError, binascii.Error, ValueError):
        raise errors.ValidationFailedError(
            "a sealed value could not be opened with this service's key",
            details=[{"field": "password", "message": "not sealed to GET /credentials/public-key"}],
        ) from None
