"""The master key and its file: created once with mode 0600, read back strictly, replaced only
through `<file>.new` by a rotation (the procedure is in eventstore.keyring). No key bytes ever
appear in a message or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import AsyncIterator
from pathlib import Path

from eventstore.errors import KeyFileError

KEY_BYTES = 32
LOCK_POLL_S = 0.05
LOCK_TIMEOUT_S = 60.0


class MasterKey:
    """The key that wraps every data key: 32 random bytes; `bytes(key)` gives them."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes")
        self._secret = bytes(secret)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        """The key in `path`; if there is no such file, a new key written there atomically
        (mode 0600, fsynced with its directory).

        Raises:
            KeyFileError: the file is not a regular file, is open to group or others, or does
                not hold exactly one base64 key of 32 bytes.
        """
        with contextlib.suppress(FileNotFoundError):
            return read_key(path)
        key = cls.generate()
        try:
            _publish(key, path, replace=False)
        except FileExistsError:  # another process created it first: theirs wins
            return read_key(path)
        return key

    @property
    def fingerprint(self) -> str:
        """The first 16 hex digits of the key's SHA-256: names the key, reveals nothing."""
        return hashlib.sha256(self._secret).hexdigest()[:16]

    def __bytes__(self) -> bytes:
        return self._secret

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"MasterKey(fingerprint={self.fingerprint!r})"


def pending_path(key_file: Path) -> Path:
    """Where a rotation writes the new key before it commits: `<key_file>.new`."""
    return key_file.with_name(key_file.name + ".new")


def read_key(path: Path) -> MasterKey:
    """The key in `path`. Raises FileNotFoundError if absent, KeyFileError if unusable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise KeyFileError(f"the key file {path} is not a regular file")
        if mode & 0o077:
            raise KeyFileError(
                f"the key file {path} is open to group or others (mode {stat.S_IMODE(mode):04o});"
                " it must be 0600"
            )
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    return _decode(data, path)


def _decode(data: bytes, path: Path) -> MasterKey:
    try:
        secret = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"the key file {path} does not hold a base64 key") from None
    if len(secret) != KEY_BYTES:
        raise KeyFileError(f"the key file {path} does not hold a {KEY_BYTES}-byte key")
    return MasterKey(secret)


def write_pending(key_file: Path, key: MasterKey) -> None:
    """Durably write `key` to `<key_file>.new` (complete or absent, never partial)."""
    _publish(key, pending_path(key_file), replace=True)


def promote_pending(key_file: Path) -> None:
    """Atomically make `<key_file>.new` the key file."""
    os.replace(pending_path(key_file), key_file)
    _fsync_directory(key_file.parent)


def recover(key_file: Path, expected: str | None) -> MasterKey:
    """The master key whose fingerprint is `expected` (the database's), finishing or undoing
    an interrupted rotation. Call it only while holding `locked(key_file)`.

    - `expected` is None (no live data key): the key file, created if need be.
    - the key file matches: a leftover `.new` never wrapped anything committed; it is removed.
    - `.new` matches: the rotation committed but did not rename; the rename is done now.

    Raises:
        KeyFileError: neither file holds the expected key, or one of them is unusable.
    """
    pending = pending_path(key_file)
    current = _read_if_present(key_file)
    candidate = _read_if_present(pending)
    if expected is None and current is None and candidate is None:
        return MasterKey.load_or_create(key_file)
    if current is not None and expected in (None, current.fingerprint):
        _discard(pending)
        return current
    if candidate is not None and expected in (None, candidate.fingerprint):
        promote_pending(key_file)
        return candidate
    raise KeyFileError(
        f"the data keys are wrapped by master key {expected}, which neither {key_file} nor "
        f"{pending} holds"
    )


@contextlib.asynccontextmanager
async def locked(key_file: Path) -> AsyncIterator[None]:
    """Holds `<key_file>.lock` (flock): one rotation or recovery at a time, across processes.

    Raises:
        KeyFileError: the lock file cannot be opened, or is held for over a minute.
    """
    lock_file = key_file.with_name(key_file.name + ".lock")
    try:
        fd = os.open(lock_file, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise KeyFileError(f"cannot open the lock file {lock_file}: {exc.strerror}") from None
    try:
        await _acquire(fd, lock_file)
        yield
    finally:
        os.close(fd)  # releases the lock


async def _acquire(fd: int, lock_file: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOCK_TIMEOUT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if loop.time() > deadline:
                raise KeyFileError(f"{lock_file} stayed locked by another process") from None
            # Polling, not a thread blocked in flock: cancelling the waiter leaks no lock.
            await asyncio.sleep(LOCK_POLL_S)


def _read_if_present(path: Path) -> MasterKey | None:
    try:
        return read_key(path)
    except FileNotFoundError:
        return None


def _publish(key: MasterKey, path: Path, *, replace: bool) -> None:
    """Write the key to a temporary file, fsync it, then link or rename it into place."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        _write_all(fd, base64.b64encode(bytes(key)) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # unlike rename, refuses to overwrite an existing key
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _discard(path: Path) -> None:
    if path.exists():
        path.unlink(missing_ok=True)
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
