"""The auditor's surface over eventstore.audit: the report as JSON (for `GET /audit/verify` and
`dtma audit verify`), the audit public key as JSON, and the task that signs a checkpoint of the
chain every `DTMA_CHECKPOINT_EVERY` events while the service runs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from nacl.signing import VerifyKey

from eventstore.audit import AuditReport, ChainBrokenError, Checkpointer
from eventstore.errors import StoreError
from eventstore.signing import ALGORITHM, key_id_of, public_key_b64
from projections.runner import ProjectionRunner

logger = logging.getLogger(__name__)

IDLE_S = 60.0  # also looks now and then: another process may have appended
KeysFrom = Literal["service", "argument", "checkpoints"]


def report_json(
    report: AuditReport, trusted: Mapping[str, VerifyKey], keys_from: KeysFrom
) -> dict[str, Any]:
    """The contract's `{ok, checked, headPosition, headHash, firstBadPosition}` with
    `checkpoints` (and `knownHeads`, when the auditor gave any). `ok` is false if any part
    fails. `keysFrom` says whose keys the signatures were checked under: only `service` and
    `argument` are keys held apart from the log."""
    chain = report.chain
    body: dict[str, Any] = {
        "ok": report.ok,
        "checked": chain.checked,
        "headPosition": chain.head_position,
        "headHash": chain.head_hash,
        "firstBadPosition": chain.first_bad_position,
        "checkpoints": checkpoints_json(report, trusted, keys_from),
    }
    if report.known_heads:
        body["knownHeads"] = [
            {"position": h.position, "headHash": h.head_hash, "ok": h.ok}
            | ({"problem": h.problem} if h.problem else {})
            for h in report.known_heads
        ]
    return body


def checkpoints_json(
    report: AuditReport, trusted: Mapping[str, VerifyKey], keys_from: KeysFrom
) -> dict[str, Any]:
    checkpoints = report.checkpoints
    body: dict[str, Any] = {
        "checked": checkpoints.checked,
        "lastVerifiedPosition": checkpoints.last_verified_position,
        "keyIds": sorted(trusted),
        "keysFrom": keys_from,
    }
    if checkpoints.first_bad_checkpoint is not None:
        body["firstBadCheckpoint"] = checkpoints.first_bad_checkpoint
        body["problem"] = checkpoints.problem
    return body


def public_key_json(key: VerifyKey) -> dict[str, str]:
    """The audit key for an auditor to keep out of band: base64, hex and its id."""
    return {
        "publicKey": public_key_b64(key),
        "publicKeyHex": bytes(key).hex(),
        "keyId": key_id_of(key),
        "algorithm": ALGORITHM,
    }


class CheckpointSigner:
    """Signs the chain at every multiple of N as the log grows past it.

    A broken chain is logged as an error and left unsigned: a checkpoint never vouches for it.
    """

    def __init__(self, checkpointer: Checkpointer, runner: ProjectionRunner) -> None:
        self._checkpointer = checkpointer
        self._runner = runner

    async def run(self) -> None:
        every = self._checkpointer.every
        while True:
            folded = self._runner.position  # the head sign_due reads is at least this
            await self.sign_due()
            due = (folded // every + 1) * every
            await self._runner.wait_for(due, within=IDLE_S)

    async def sign_due(self) -> None:
        try:
            for checkpoint in await self._checkpointer.sign_due():
                logger.info(
                    "signed a checkpoint at position %d with key %s",
                    checkpoint.position,
                    checkpoint.key_id,
                )
        except ChainBrokenError as exc:
            logger.error("%s", exc)
        except StoreError as exc:
            logger.warning("could not sign a checkpoint now: %s", exc)
