"""Values a caller may send sealed to this service's public key (GET /credentials/public-key):
opened only in memory, at the moment they are stored again under a data key."""

from __future__ import annotations

import base64
import binascii

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from service import errors
from service.handling import commands


def opened(value: str | commands.Sealed, private: PrivateKey, field: str) -> bytes:
    """The plaintext of `value`; a sealed value that does not open is the caller's 422 at
    `field`, without the value."""
    if isinstance(value, str):
        return value.encode()
    try:
        return SealedBox(private).decrypt(base64.b64decode(value.sealed, validate=True))
    except (CryptoError, binascii.Error, ValueError):
        raise errors.ValidationFailedError(
            "a sealed value could not be opened with this service's key",
            details=[{"field": field, "message": "not sealed to GET /credentials/public-key"}],
        ) from None
