"""The auditor's surface over eventstore.audit: the report and the audit public key as answer
models (for `GET /audit/...` and `dtma audit ...`), and the task that signs a checkpoint of
the chain every `DTMA_CHECKPOINT_EVERY` events while the service runs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from nacl.signing import VerifyKey

from eventstore.audit import AuditReport, ChainBrokenError, Checkpointer, KnownHeadReport
from eventstore.errors import StoreError
from eventstore.signing import ALGORITHM, key_id_of, public_key_b64
from projections.runner import ProjectionRunner
from service.handling import answers

logger = logging.getLogger(__name__)

IDLE_S = 60.0  # also looks now and then: another process may have appended
KeysFrom = Literal["service", "argument", "checkpoints"]


def report_json(
    report: AuditReport, trusted: Mapping[str, VerifyKey], keys_from: KeysFrom
) -> dict[str, Any]:
    """`chain_report` as JSON, `firstBadPosition` null when there is none."""
    return chain_report(report, trusted, keys_from).wire()


def chain_report(
    report: AuditReport, trusted: Mapping[str, VerifyKey], keys_from: KeysFrom
) -> answers.ChainReport:
    """The contract's `{ok, checked, headPosition, headHash, firstBadPosition}` with
    `checkpoints` (and `knownHeads`, when the auditor gave any). `ok` is false if any part
    fails. `keysFrom` says whose keys the signatures were checked under: only `service` and
    `argument` are keys held apart from the log."""
    chain = report.chain
    found = answers.ChainReport(
        ok=report.ok,
        checked=chain.checked,
        head_position=chain.head_position,
        head_hash=chain.head_hash,
        first_bad_position=chain.first_bad_position,
        checkpoints=checkpoints_verdict(report, trusted, keys_from),
    )
    if report.known_heads:
        found.known_heads = [known_head_verdict(h) for h in report.known_heads]
    return found


def known_head_verdict(head: KnownHeadReport) -> answers.KnownHeadVerdict:
    """`problem` is left out when there is none."""
    verdict = answers.KnownHeadVerdict(position=head.position, head_hash=head.head_hash, ok=head.ok)
    if head.problem:
        verdict.problem = head.problem
    return verdict


def checkpoints_verdict(
    report: AuditReport, trusted: Mapping[str, VerifyKey], keys_from: KeysFrom
) -> answers.CheckpointsVerdict:
    checkpoints = report.checkpoints
    verdict = answers.CheckpointsVerdict(
        checked=checkpoints.checked,
        last_verified_position=checkpoints.last_verified_position,
        key_ids=sorted(trusted),
        keys_from=keys_from,
    )
    if checkpoints.first_bad_checkpoint is not None:
        verdict.first_bad_checkpoint = checkpoints.first_bad_checkpoint
        verdict.problem = checkpoints.problem
    return verdict


def public_key_json(key: VerifyKey) -> dict[str, Any]:
    """`audit_public_key` as JSON."""
    return audit_public_key(key).wire()


def audit_public_key(key: VerifyKey) -> answers.AuditPublicKey:
    """The audit key for an auditor to keep out of band: base64, hex and its id."""
    return answers.AuditPublicKey(
        public_key=public_key_b64(key),
        public_key_hex=bytes(key).hex(),
        key_id=key_id_of(key),
        algorithm=ALGORITHM,
    )


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
