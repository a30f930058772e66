"""Signed checkpoints: an Ed25519 signature over one position of the hash chain and its hash.

A checkpoint vouches that the log up to `position` is exactly the log whose chain ends in
`head_hash`; whoever holds the public key can check a copy of the log against it, offline.
Pure: no I/O. The signing key never appears in a message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

ALGORITHM = "Ed25519"
# Domain separation: a checkpoint signature can never be mistaken for any other signed bytes.
CONTEXT = "dtma-checkpoint-v1"
PUBLIC_KEY_BYTES = 32


def checkpoint_message(position: int, head_hash: str, signed_at: str) -> bytes:
    """The signed bytes. Position is digits, the hash hex and the time fixed-width text, so
    the separator cannot occur inside a field."""
    return f"{CONTEXT}|{position}|{head_hash}|{signed_at}".encode("ascii")


def key_id_of(key: VerifyKey) -> str:
    """The first 16 hex digits of the public key's SHA-256: names the key in every checkpoint."""
    return hashlib.sha256(bytes(key)).hexdigest()[:16]


def public_key_b64(key: VerifyKey) -> str:
    return base64.b64encode(bytes(key)).decode("ascii")


def parse_public_key(text: str) -> VerifyKey:
    """An Ed25519 public key written as 64 hex digits or as base64 of its 32 bytes.

    Raises:
        ValueError: neither spelling of a 32-byte key.
    """
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 2 * PUBLIC_KEY_BYTES else base64.b64decode(text)
    except (binascii.Error, ValueError):
        raise ValueError("a public key is 64 hex digits or base64 of 32 bytes") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError("a public key is 64 hex digits or base64 of 32 bytes")
    return VerifyKey(raw)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """The chain's hash at `position`, signed at `signed_at` by the key `key_id`. The public key
    is kept beside it to name the key; trust comes from a copy of it held out of band."""

    position: int
    head_hash: str
    signed_at: str
    key_id: str
    public_key: str  # hex
    signature: str  # hex

    def message(self) -> bytes:
        return checkpoint_message(self.position, self.head_hash, self.signed_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "headHash": self.head_hash,
            "signedAt": self.signed_at,
            "keyId": self.key_id,
            "publicKey": self.public_key,
            "signature": self.signature,
            "algorithm": ALGORITHM,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SignedCheckpoint:
        """Raises ValueError if a field is missing or of the wrong type."""
        try:
            fields = (
                value["position"],
                value["headHash"],
                value["signedAt"],
                value["keyId"],
                value["publicKey"],
                value["signature"],
            )
        except (KeyError, TypeError):
            raise ValueError("not a signed checkpoint") from None
        if type(fields[0]) is not int or not all(isinstance(f, str) for f in fields[1:]):
            raise ValueError("not a signed checkpoint")
        return cls(*fields)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


class Signer:
    """Signs checkpoints with the audit key; `repr` names the key by its id only."""

    __slots__ = ("_key",)

    def __init__(self, key: SigningKey) -> None:
        self._key = key

    @property
    def verify_key(self) -> VerifyKey:
        return self._key.verify_key

    @property
    def key_id(self) -> str:
        return key_id_of(self.verify_key)

    def sign(self, position: int, head_hash: str, signed_at: str) -> SignedCheckpoint:
        signed = self._key.sign(checkpoint_message(position, head_hash, signed_at))
        return SignedCheckpoint(
            position=position,
            head_hash=head_hash,
            signed_at=signed_at,
            key_id=self.key_id,
            public_key=bytes(self.verify_key).hex(),
            signature=signed.signature.hex(),
        )

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"


def trusted_keys(keys: Iterable[VerifyKey]) -> dict[str, VerifyKey]:
    return {key_id_of(key): key for key in keys}


def signature_problem(checkpoint: SignedCheckpoint, trusted: Mapping[str, VerifyKey]) -> str | None:
    """Why the checkpoint's signature does not hold under the trusted keys, or None if it does."""
    key = trusted.get(checkpoint.key_id)
    if key is None:
        return f"signed by key {checkpoint.key_id}, which is not a trusted key"
    try:
        key.verify(checkpoint.message(), bytes.fromhex(checkpoint.signature))
    except (BadSignatureError, ValueError):
        return "the signature does not match the position and hash"
    return None


def embedded_keys(checkpoints: Iterable[SignedCheckpoint]) -> dict[str, VerifyKey]:
    """The keys the checkpoints name themselves: only for checking a copy without a key held
    out of band, which catches a tampered checkpoint but not a forger who signs his own."""
    found: dict[str, VerifyKey] = {}
    for checkpoint in checkpoints:
        try:
            key = VerifyKey(bytes.fromhex(checkpoint.public_key))
        except ValueError:
            continue
        if key_id_of(key) == checkpoint.key_id:
            found[checkpoint.key_id] = key
    return found
