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


class EventRejectedError(StoreError):
    """This append cannot be stored as it is (the database refused a value in it); the
    appends batched with it are not affected. Retrying it unchanged fails again."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the append was rejected: {reason}")
        self.reason = reason

    @classmethod
    def because_of(cls, exc: BaseException) -> EventRejectedError:
        """The driver's refusal, named by its type only: its text may quote the data."""
        if isinstance(exc, UnicodeError):
            return cls("it holds text that is not valid Unicode (a lone surrogate)")
        return cls(f"the database refused a value in it ({type(exc).__name__})")


class UnknownEventTypeError(StoreError):
    """The catalogue has no model for a stored type name."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"no model registered for event type {type_name!r}")
        self.type_name = type_name
