"""The store's errors. Driver exceptions are translated into these in one place per backend."""

from __future__ import annotations


class StoreError(Exception):
    """Root of everything the store raises on purpose."""


class VersionConflictError(StoreError):
    """The stream was not at the version the caller expected."""

    def __init__(self, stream_id: str, expected: int | None, actual: int) -> None:
        super().__init__(f"stream {stream_id!r} is at version {actual}, expected {expected}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class IdempotencyConflictError(StoreError):
    """An idempotency key was reused for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__("idempotency key was already used for a different request")
        self.key = key


class StoreUnavailableError(StoreError):
    """The database could not be reached or refused the operation; nothing is known appended."""


class UnknownEventTypeError(StoreError):
    """The catalogue has no model for a stored type name."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"no model registered for event type {type_name!r}")
        self.type_name = type_name


class EventRejectedError(StoreError):
    """An append the store will not write: it could not be stored, or read back, exactly.
    Nothing of it was appended; the appends batched with it are not affected, and retrying it
    unchanged fails again.

    `field` names where in the append the problem is (`stream_id`, `type`, `data.config.a`,
    ...), when that is known: the store's own checks know it, the database's refusal does not.
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        where = f"{field}: " if field else ""
        super().__init__(f"the append was rejected: {where}{reason}")
        self.reason = reason
        self.field = field

    @classmethod
    def because_of(cls, exc: BaseException) -> EventRejectedError:
        """The driver's refusal, named by its type only: its text may quote the data."""
        if isinstance(exc, UnicodeError):
            return cls("it holds text that is not valid Unicode (a lone surrogate)")
        return cls(f"the database refused a value in it ({type(exc).__name__})")


class SchemaVersionError(StoreError):
    """A stored event is of a newer schema version than this catalogue knows: written by a
    newer release. It must not be read as if it were the older shape."""

    def __init__(self, type_name: str, stored: int, known: int) -> None:
        super().__init__(
            f"event type {type_name!r} is stored at schema version {stored}; "
            f"this release reads up to version {known}"
        )
        self.type_name = type_name
        self.stored = stored
        self.known = known


class KeyringError(StoreError):
    """Root of what the key ring raises on purpose (eventstore.keyring)."""


class KeyFileError(KeyringError):
    """The key file is missing, malformed, open to other users, or not the database's master."""


class UnknownKeyError(KeyringError):
    """No data key has this id."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"no data key {key_id!r}")
        self.key_id = key_id


class KeyDestroyedError(KeyringError):
    """The data key was destroyed: whatever it encrypted is gone for good."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"data key {key_id!r} was destroyed")
        self.key_id = key_id


class CiphertextError(KeyringError):
    """The ciphertext is malformed, or was not made with this key."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"the ciphertext does not decrypt with key {key_id!r}")
        self.key_id = key_id


class MasterKeyMismatchError(KeyFileError):
    """The data keys are wrapped by another master key than the one the ring holds."""

    def __init__(self, found: str, held: str) -> None:
        super().__init__(f"data keys are wrapped by master key {found}, this ring holds {held}")
        self.found = found
        self.held = held
