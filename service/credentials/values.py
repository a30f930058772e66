"""A credential version in plaintext, only ever in memory: read from a request (sealed values
opened), sealed into events under a fresh data key, and opened again from the log to inject or
to refresh it. No function here logs or formats a value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from nacl.public import PrivateKey

from eventstore import keyring
from projections import credentials, specs
from service import errors
from service.handling import commands, sealed

Mode = Literal["env", "file"]
Kind = Literal["api_key", "certificate", "oauth_access_token"]


@dataclass(frozen=True, slots=True)
class PlainSecret:
    name: str
    mode: Mode
    kind: Kind
    value: bytes = field(repr=False)
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class PlainGrant:
    provider: str
    client_id: str
    scopes: tuple[str, ...]
    token_endpoint: str
    client_secret: bytes = field(repr=False)
    refresh_token: bytes | None = field(default=None, repr=False)
    mode: Mode = "file"

    @property
    def token_name(self) -> str:
        return access_token_name(self.provider)


@dataclass(frozen=True, slots=True)
class PlainVersion:
    secrets: tuple[PlainSecret, ...]
    grants: tuple[PlainGrant, ...] = ()

    def with_token(self, grant: PlainGrant, token: bytes, expires_at: str | None) -> PlainVersion:
        """This version with `grant`'s access token replaced (and its refresh token, rotated)."""
        secret = PlainSecret(grant.token_name, grant.mode, "oauth_access_token", token, expires_at)
        kept = tuple(s for s in self.secrets if s.name != grant.token_name)
        grants = tuple(grant if g.provider == grant.provider else g for g in self.grants)
        return replace(self, secrets=(*kept, secret), grants=grants)


def access_token_name(provider: str) -> str:
    return f"OAUTH_{provider.upper()}_ACCESS_TOKEN"


def from_request(
    spec: commands.CredentialsSpec, private: PrivateKey, modes: Mapping[str, str]
) -> PlainVersion:
    """The body's credentials with sealed values opened. `modes` are the server's declared
    requirements (an OAuth token is injected as they say, else as a file). 422 for a sealed
    value that does not open, a name given twice, an env value that cannot be a variable."""
    secrets = [
        PlainSecret(
            k.name,
            k.mode,
            "api_key",
            sealed.opened(k.value, private, f"credentials.apiKeys.{i}.value"),
        )
        for i, k in enumerate(spec.api_keys)
    ]
    secrets += [
        PlainSecret(
            c.name,
            "file",
            "certificate",
            sealed.opened(c.pem, private, f"credentials.certificates.{i}.pem"),
        )
        for i, c in enumerate(spec.certificates)
    ]
    grants = [
        PlainGrant(
            provider=p.provider,
            client_id=p.client_id,
            scopes=tuple(p.scopes),
            token_endpoint=p.token_endpoint,
            client_secret=sealed.opened(
                p.client_secret, private, f"credentials.oauthProviders.{i}.clientSecret"
            ),
            refresh_token=None
            if p.refresh_token is None
            else sealed.opened(
                p.refresh_token, private, f"credentials.oauthProviders.{i}.refreshToken"
            ),
            mode="env" if modes.get(access_token_name(p.provider)) == "env" else "file",
        )
        for i, p in enumerate(spec.oauth_providers)
    ]
    version = PlainVersion(tuple(secrets), tuple(grants))
    check(version)
    return version


def check(version: PlainVersion) -> None:
    for secret in version.secrets:
        if secret.mode == "env" and not _env_safe(secret.value):
            raise _invalid(f"{secret.name!r} cannot be an environment variable (not text)")
    names = [s.name for s in version.secrets] + [g.token_name for g in version.grants]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise _invalid(*(f"{n!r} is given twice" for n in duplicates))
    if not names:
        raise _invalid("give at least one apiKey, oauthProvider or certificate")


Sealed = tuple[str, tuple[specs.SealedSecret, ...], tuple[specs.OAuthGrant, ...]]


async def seal(ring: keyring.KeyRing, version: PlainVersion) -> Sealed:
    """A fresh data key, and the version encrypted under it."""
    key_id = await ring.create()
    secrets = tuple(
        [
            specs.SealedSecret(
                name=s.name,
                mode=s.mode,
                kind=s.kind,
                ciphertext=await ring.encrypt(key_id, s.value),
                expires_at=s.expires_at,
            )
            for s in version.secrets
        ]
    )
    grants = tuple(
        [
            specs.OAuthGrant(
                provider=g.provider,
                client_id=g.client_id,
                scopes=g.scopes,
                token_endpoint=g.token_endpoint,
                client_secret=await ring.encrypt(key_id, g.client_secret),
                refresh_token=None
                if g.refresh_token is None
                else await ring.encrypt(key_id, g.refresh_token),
                mode=g.mode,
            )
            for g in version.grants
        ]
    )
    return key_id, secrets, grants


async def unseal(ring: keyring.KeyRing, version: credentials.Version) -> PlainVersion:
    """A version from the log, opened (KeyDestroyedError once it was forgotten)."""
    secrets = tuple(
        [
            PlainSecret(
                s.name,
                s.mode,
                s.kind,
                await ring.decrypt(version.key_id, s.ciphertext),
                s.expires_at,
            )
            for s in version.secrets
        ]
    )
    grants = tuple(
        [
            PlainGrant(
                provider=g.provider,
                client_id=g.client_id,
                scopes=g.scopes,
                token_endpoint=g.token_endpoint,
                client_secret=await ring.decrypt(version.key_id, g.client_secret),
                refresh_token=None
                if g.refresh_token is None
                else await ring.decrypt(version.key_id, g.refresh_token),
                mode=g.mode,
            )
            for g in version.oauth
        ]
    )
    return PlainVersion(secrets, grants)


def _env_safe(value: bytes) -> bool:
    try:
        return "\x00" not in value.decode()
    except UnicodeDecodeError:
        return False


def _invalid(*messages: str) -> errors.ValidationFailedError:
    return errors.ValidationFailedError(
        "the credentials are not valid",
        details=[{"field": "credentials", "message": m} for m in messages],
    )
