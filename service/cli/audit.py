"""`dtma audit verify | public-key | checkpoint`, the auditor's commands.

`verify` only reads: it opens a copy of the database (`--database-url`) read-only, never
migrates it, and needs no key file; the audit public key comes from `--public-key`, held out of
band. `public-key` and `checkpoint` use the service's key ring (`DTMA_KEY_FILE`) on the live
database.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from nacl.signing import VerifyKey

from eventstore import audit, errors, keyring, signing
from service import app
from service import settings as service_settings
from service.audit import checkpoints

KNOWN_HEAD = re.compile(audit.KNOWN_HEAD_PATTERN)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["verify", "public-key", "checkpoint"])
    parser.add_argument(
        "--public-key",
        dest="public_keys",
        action="append",
        default=[],
        metavar="KEY",
        help="verify: trust checkpoints signed by this Ed25519 key (hex or base64; repeatable)",
    )
    parser.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="POSITION:HASH|FILE",
        help="verify: a head known from elsewhere, or a file from `audit checkpoint --export`",
    )
    parser.add_argument("--export", metavar="FILE", help="checkpoint: also write it to FILE")


async def run(settings: service_settings.Settings, args: argparse.Namespace) -> int:
    """Exit 0: done (and, for verify, everything holds); 1: verification failed or the
    database could not be read; 2 (SettingsError, from main): a bad argument."""
    try:
        if args.action == "verify":
            return await verify(settings, args.public_keys, args.against)
        if args.action == "public-key":
            return await public_key(settings)
        return await checkpoint(settings, args.export)
    except errors.StoreError as exc:
        print(f"dtma: {exc}", file=sys.stderr)
        return 1


async def verify(
    settings: service_settings.Settings, public_keys: Sequence[str], against: Sequence[str]
) -> int:
    """Chain, stored checkpoints and known heads; exit 0 if all hold, 1 if any fails."""
    given = _parse_keys(public_keys)
    heads, exported = _parse_against(against)
    store = await app.open_reader(settings)
    try:
        stored = await audit.load_checkpoints(store.engine)
        keys_from: checkpoints.KeysFrom = "argument" if given else "checkpoints"
        trusted = signing.trusted_keys(given) or signing.embedded_keys([*stored, *exported])
        report = await audit.audit(store, trusted, [*heads, *map(_head_of, exported)])
    finally:
        await store.close()
    report = _with_signatures_of(report, exported, trusted, len(heads))
    print(json.dumps(checkpoints.report_json(report, trusted, keys_from)))
    return 0 if report.ok else 1


async def public_key(settings: service_settings.Settings) -> int:
    """Print the audit public key (creating the key on a database that has none yet)."""
    store = await app.open_store(settings)
    try:
        ring = await keyring.load_ring(store.engine, Path(settings.key_file))
        signer = await ring.audit_signer()
    except keyring.KeyFileError as exc:
        print(f"dtma: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(json.dumps(checkpoints.public_key_json(signer.verify_key)))
    return 0


async def checkpoint(settings: service_settings.Settings, export: str | None) -> int:
    """Sign the chain at its head now; print the checkpoint (and write it to `export`)."""
    store = await app.open_store(settings)
    try:
        ring = await keyring.load_ring(store.engine, Path(settings.key_file))
        checkpointer = audit.Checkpointer(
            store, await ring.audit_signer(), settings.checkpoint_every
        )
        signed = await checkpointer.sign_head()
    except (keyring.KeyFileError, audit.ChainBrokenError) as exc:
        print(f"dtma: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    if export is not None:
        await asyncio.to_thread(Path(export).write_text, signed.dumps() + "\n")
    print(json.dumps(signed.to_json()))
    return 0


def _parse_keys(texts: Sequence[str]) -> list[VerifyKey]:
    try:
        return [signing.parse_public_key(text) for text in texts]
    except ValueError as exc:
        raise service_settings.SettingsError(f"--public-key: {exc}") from None


def _parse_against(
    texts: Sequence[str],
) -> tuple[list[audit.KnownHead], list[signing.SignedCheckpoint]]:
    heads, exported = [], []
    for text in texts:
        if KNOWN_HEAD.match(text):
            heads.append(audit.KnownHead.parse(text))
        else:
            exported.append(_read_exported(Path(text)))
    return heads, exported


def _read_exported(path: Path) -> signing.SignedCheckpoint:
    try:
        return signing.SignedCheckpoint.from_json(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise service_settings.SettingsError(
            f"--against {str(path)!r} is neither POSITION:HASH nor a checkpoint file ({exc})"
        ) from None


def _head_of(checkpoint: signing.SignedCheckpoint) -> audit.KnownHead:
    return audit.KnownHead(checkpoint.position, checkpoint.head_hash)


def _with_signatures_of(
    report: audit.AuditReport,
    exported: Sequence[signing.SignedCheckpoint],
    trusted: dict[str, VerifyKey],
    skip: int,
) -> audit.AuditReport:
    """An exported checkpoint is a known head only if its own signature holds."""
    heads = list(report.known_heads)
    for index, checkpoint in enumerate(exported, start=skip):
        problem = signing.signature_problem(checkpoint, trusted)
        if problem is not None:
            heads[index] = dataclasses.replace(heads[index], problem=f"the file: {problem}")
    return dataclasses.replace(report, known_heads=tuple(heads))
