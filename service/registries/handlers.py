"""Registry credentials: stored (the password sealed under a fresh data key, perhaps sealed to
our public key on the wire), listed without passwords, and forgotten by destroying the key."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import Field

from eventstore import keyring
from projections import events, registries
from service import errors
from service.handling import appending, commands, context, sealed

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


class ForgetRegistryCredentials(commands.Command):
    """DELETE /registries/{server}."""

    server: Annotated[str, Field(pattern=SERVER)]


async def store(
    ctx: context.CommandContext,
    command: StoreRegistryCredentials,
    meta: context.CommandMeta,
    *,
    ring: keyring.KeyRing,
) -> dict[str, Any]:
    """Seal the password under a fresh data key and append it; credentials they replace have
    their key destroyed."""
    replayed = await appending.replay_if_known(ctx, meta)  # before any key is made
    if replayed is not None:
        return replayed
    password = sealed.opened(command.password, await ring.box_keypair(), "password")
    server = server_name(command.server)
    key_id = await ring.create()
    event = events.RegistryCredentialsStored(
        server=server,
        username=command.username,
        key_id=key_id,
        password=await ring.encrypt(key_id, password),
    )
    replaced: list[str] = []  # the key of the credentials replaced, as last decided

    def decided() -> appending.Decided:
        state = ctx.runner.state(registries.PROJECTION)
        known = state.registries.get(server)
        replaced[:] = [known.key_id] if known is not None else []
        stream = registries.stream_of(server)
        version = state.stream_versions.get(stream, 0)
        return appending.Decided(stream, [event], version, {"server": server})

    stream = registries.stream_of(server)
    try:
        answer = await appending.decide_and_append(
            ctx, meta, appending.on_read_models(ctx, decided), stream
        )
    except BaseException:
        await ring.destroy(key_id)  # nothing recorded holds it
        raise
    for old in replaced:
        await ring.destroy(old)
    return answer


async def forget(
    ctx: context.CommandContext,
    command: ForgetRegistryCredentials,
    meta: context.CommandMeta,
    *,
    ring: keyring.KeyRing,
) -> dict[str, Any]:
    """Record that they are forgotten, then destroy their key: the log keeps only ciphertext
    that nothing can open any more."""
    server = server_name(command.server)
    stream = registries.stream_of(server)
    forgotten: list[str] = []  # the key of the credentials forgotten, as last decided

    def decided() -> appending.Decided:
        state = ctx.runner.state(registries.PROJECTION)
        known = state.registries.get(server)
        if known is None:
            raise errors.NotFoundError(f"no credentials for registry {command.server!r}")
        forgotten[:] = [known.key_id]
        event = events.RegistryCredentialsForgotten(server=known.server, key_id=known.key_id)
        version = state.stream_versions.get(stream, 0)
        return appending.Decided(stream, [event], version, {"server": known.server})

    answer = await appending.decide_and_append(
        ctx, meta, appending.on_read_models(ctx, decided), stream
    )
    for key_id in forgotten:
        await ring.destroy(key_id)
    return answer


def listing(state: registries.RegistriesState) -> list[tuple[str, str, str]]:
    """GET /registries: server, username and when stored; never a password."""
    return [(r.server, r.username, r.stored_at) for _, r in sorted(state.registries.items())]


def command_handlers(ring: keyring.KeyRing) -> dict[type[commands.Command], context.Handler]:
    """The registry commands' table, with the key ring their passwords are sealed in."""
    return {
        StoreRegistryCredentials: functools.partial(store, ring=ring),
        ForgetRegistryCredentials: functools.partial(forget, ring=ring),
    }
