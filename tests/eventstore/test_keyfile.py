"""The master key's file: created 0600 and atomically, read strictly, and the recovery rules
that finish or undo an interrupted rotation (file level; the database side is in
test_keyring.py)."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path

import pytest

from eventstore import keyfile
from eventstore.errors import KeyFileError
from eventstore.keyfile import MasterKey


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "dtma.key"


def test_the_key_file_is_created_with_mode_0600_and_read_back(key_file: Path) -> None:
    created = MasterKey.load_or_create(key_file)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes() == base64.b64encode(bytes(created)) + b"\n"
    assert MasterKey.load_or_create(key_file) == created
    assert [p.name for p in key_file.parent.iterdir()] == ["dtma.key"]  # no temporary left


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_open_to_group_or_others_is_refused(key_file: Path, mode: int) -> None:
    MasterKey.load_or_create(key_file)
    key_file.chmod(mode)

    with pytest.raises(KeyFileError, match=f"{mode:04o}"):
        MasterKey.load_or_create(key_file)


@pytest.mark.parametrize(
    "content",
    [b"", b"not base64 at all!\n", base64.b64encode(b"short") + b"\n", b"\x00" * 44],
    ids=["empty", "not-base64", "wrong-length", "binary"],
)
def test_a_malformed_key_file_is_refused_without_echoing_it(key_file: Path, content: bytes) -> None:
    key_file.write_bytes(content)
    key_file.chmod(0o600)

    with pytest.raises(KeyFileError) as raised:
        MasterKey.load_or_create(key_file)
    if content.strip():
        assert content.strip().decode("latin-1") not in str(raised.value)
    assert key_file.read_bytes() == content  # never overwritten


def test_a_directory_in_place_of_the_key_file_is_refused(key_file: Path) -> None:
    key_file.mkdir(mode=0o700)

    with pytest.raises(KeyFileError, match="regular file"):
        MasterKey.load_or_create(key_file)


def test_recover_keeps_the_key_file_and_drops_a_stale_pending_key(key_file: Path) -> None:
    current = MasterKey.load_or_create(key_file)
    keyfile.write_pending(key_file, MasterKey.generate())

    assert keyfile.recover(key_file, current.fingerprint) == current
    assert not keyfile.pending_path(key_file).exists()


def test_recover_promotes_the_pending_key_when_the_database_already_uses_it(
    key_file: Path,
) -> None:
    MasterKey.load_or_create(key_file)
    new = MasterKey.generate()
    keyfile.write_pending(key_file, new)

    assert keyfile.recover(key_file, new.fingerprint) == new
    assert keyfile.read_key(key_file) == new
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not keyfile.pending_path(key_file).exists()


def test_recover_refuses_when_no_file_holds_the_databases_key(key_file: Path) -> None:
    with pytest.raises(KeyFileError):
        keyfile.recover(key_file, MasterKey.generate().fingerprint)
    assert not key_file.exists()
    assert keyfile.recover(key_file, None) == keyfile.read_key(key_file)  # no data: created


async def test_the_lock_admits_one_holder_at_a_time(key_file: Path) -> None:
    order: list[str] = []
    entered, released = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with keyfile.locked(key_file):
            order.append("first in")
            entered.set()
            await released.wait()
            order.append("first out")

    holder = asyncio.create_task(first())
    await entered.wait()
    second = asyncio.create_task(_enter(key_file, order))
    await asyncio.sleep(3 * keyfile.LOCK_POLL_S)  # the second waits while the first holds
    assert order == ["first in"]
    released.set()
    await asyncio.gather(holder, second)

    assert order == ["first in", "first out", "second in"]
    assert stat.S_IMODE(os.stat(str(key_file) + ".lock").st_mode) == 0o600


async def _enter(key_file: Path, order: list[str]) -> None:
    async with keyfile.locked(key_file):
        order.append("second in")
