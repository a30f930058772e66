"""Signed checkpoints, pure: what is signed, how keys are named and read, what fails to verify."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from nacl.signing import SigningKey

from eventstore import signing
from eventstore.signing import SignedCheckpoint, Signer

AT = "2025-06-01T12:00:00.000000Z"
HASH = "ab" * 32


@pytest.fixture
def signer() -> Signer:
    return Signer(SigningKey.generate())


def test_a_checkpoint_verifies_under_its_key_and_names_it(signer: Signer) -> None:
    checkpoint = signer.sign(1000, HASH, AT)

    assert checkpoint.key_id == signing.key_id_of(signer.verify_key) == signer.key_id
    assert checkpoint.public_key == bytes(signer.verify_key).hex()
    trusted = signing.trusted_keys([signer.verify_key])
    assert signing.signature_problem(checkpoint, trusted) is None


@pytest.mark.parametrize(
    "change",
    [{"position": 1001}, {"head_hash": "cd" * 32}, {"signed_at": "2026-06-01T12:00:00.000000Z"}],
    ids=["position", "hash", "time"],
)
def test_a_changed_field_no_longer_verifies(signer: Signer, change: dict[str, object]) -> None:
    tampered = replace(signer.sign(1000, HASH, AT), **change)  # type: ignore[arg-type]

    problem = signing.signature_problem(tampered, signing.trusted_keys([signer.verify_key]))
    assert problem is not None and "signature" in problem


def test_a_checkpoint_signed_by_another_key_is_not_trusted(signer: Signer) -> None:
    forger = Signer(SigningKey.generate())
    forged = forger.sign(1000, HASH, AT)

    problem = signing.signature_problem(forged, signing.trusted_keys([signer.verify_key]))
    assert problem is not None and forger.key_id in problem and "not a trusted key" in problem


def test_a_forger_who_names_the_trusted_key_id_fails_the_signature(signer: Signer) -> None:
    forged = Signer(SigningKey.generate()).sign(1000, HASH, AT)
    claimed = replace(forged, key_id=signer.key_id)

    problem = signing.signature_problem(claimed, signing.trusted_keys([signer.verify_key]))
    assert problem is not None and "signature" in problem


def test_the_message_is_domain_separated_and_unambiguous() -> None:
    assert signing.checkpoint_message(12, HASH, AT) == f"dtma-checkpoint-v1|12|{HASH}|{AT}".encode()
    assert signing.checkpoint_message(1, HASH, AT) != signing.checkpoint_message(11, HASH, AT)


def test_reads_a_public_key_as_hex_or_base64(signer: Signer) -> None:
    raw = bytes(signer.verify_key)

    assert signing.parse_public_key(raw.hex()) == signer.verify_key
    assert signing.parse_public_key(base64.b64encode(raw).decode() + "\n") == signer.verify_key
    assert signing.public_key_b64(signer.verify_key) == base64.b64encode(raw).decode()


@pytest.mark.parametrize("text", ["", "zz" * 32, "abcd", base64.b64encode(b"x" * 31).decode()])
def test_refuses_what_is_not_a_public_key(text: str) -> None:
    with pytest.raises(ValueError, match="public key"):
        signing.parse_public_key(text)


def test_an_exported_checkpoint_reads_back_equal(signer: Signer) -> None:
    checkpoint = signer.sign(5, HASH, AT)

    assert SignedCheckpoint.from_json(checkpoint.to_json()) == checkpoint
    assert checkpoint.to_json()["algorithm"] == "Ed25519"


@pytest.mark.parametrize("value", [{}, {"position": "5"}, [], {"position": 5, "headHash": 1}])
def test_refuses_json_that_is_not_a_checkpoint(value: object) -> None:
    with pytest.raises(ValueError, match="checkpoint"):
        SignedCheckpoint.from_json(value)  # type: ignore[arg-type]


def test_embedded_keys_are_those_the_checkpoints_name_consistently(signer: Signer) -> None:
    good = signer.sign(5, HASH, AT)
    lying = SignedCheckpoint(6, HASH, AT, "0" * 16, good.public_key, good.signature)

    assert list(signing.embedded_keys([good, lying])) == [signer.key_id]


def test_the_signer_shows_no_key_bytes(signer: Signer) -> None:
    shown = repr(signer)

    assert signer.key_id in shown
    assert bytes(signer.verify_key).hex() not in shown
