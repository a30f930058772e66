"""Credentials from a request: sealed values opened, bad ones refused without an echo."""

from __future__ import annotations

import base64

import pytest
from nacl.public import PrivateKey, SealedBox

from service import errors
from service.credentials import values
from service.handling import commands

PRIVATE = PrivateKey.generate()


def spec(**fields: object) -> commands.CredentialsSpec:
    return commands.CredentialsSpec.model_validate(fields)


def sealed(value: bytes, to: PrivateKey = PRIVATE) -> dict[str, str]:
    return {"sealed": base64.b64encode(SealedBox(to.public_key).encrypt(value)).decode()}


def test_plain_and_sealed_values_are_opened_with_modes_from_the_requirements() -> None:
    version = values.from_request(
        spec(
            api_keys=[
                {"name": "K", "value": "plain"},
                {"name": "f.txt", "value": sealed(b"x"), "mode": "file"},
            ],
            certificates=[{"name": "c.pem", "pem": sealed(b"-----BEGIN")}],
            oauth_providers=[
                {
                    "provider": "gh",
                    "client_id": "id",
                    "client_secret": sealed(b"cs"),
                    "token_endpoint": "https://example.test/token",
                }
            ],
        ),
        PRIVATE,
        {"OAUTH_GH_ACCESS_TOKEN": "env"},
    )

    assert [(s.name, s.mode, s.kind, s.value) for s in version.secrets] == [
        ("K", "env", "api_key", b"plain"),
        ("f.txt", "file", "api_key", b"x"),
        ("c.pem", "file", "certificate", b"-----BEGIN"),
    ]
    [grant] = version.grants
    assert (grant.client_secret, grant.mode, grant.token_name) == (
        b"cs",
        "env",
        "OAUTH_GH_ACCESS_TOKEN",
    )
    assert "plain" not in repr(version) and "cs" not in repr(grant)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"api_keys": [{"name": "K", "value": sealed(b"v", PrivateKey.generate())}]}, "sealed"),
        (
            {
                "api_keys": [
                    {"name": "K", "value": "a"},
                    {"name": "K", "value": "b", "mode": "file"},
                ]
            },
            "twice",
        ),
        ({"api_keys": [{"name": "K", "value": sealed(b"\xff\xfe")}]}, "environment variable"),
        ({}, "at least one"),
    ],
)
def test_refusals_are_422_and_never_echo_a_value(fields: dict[str, object], message: str) -> None:
    with pytest.raises(errors.ValidationFailedError) as raised:
        values.from_request(spec(**fields), PRIVATE, {})

    refusal = raised.value
    text = refusal.message + str(refusal.details)
    assert message in text
    assert "\\xff" not in text and "'a'" not in text


def test_a_new_token_replaces_the_old_one_and_its_rotated_refresh_token() -> None:
    grant = values.PlainGrant("gh", "id", (), "https://t", b"cs", b"rt1")
    version = values.PlainVersion((), (grant,)).with_token(grant, b"tok1", None)
    rotated = values.PlainGrant("gh", "id", (), "https://t", b"cs", b"rt2")

    renewed = version.with_token(rotated, b"tok2", "2026-01-01T00:00:00.000000Z")

    assert [(s.name, s.value) for s in renewed.secrets] == [("OAUTH_GH_ACCESS_TOKEN", b"tok2")]
    assert renewed.grants[0].refresh_token == b"rt2"
