"""What GET /credentials/status shows of a version: its status word, from the read models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from projections import containers, credentials

Shown = Literal["pending", "injected", "failed", "expired", "retired", "revoked"]


def shown_status(
    version: credentials.Version, instances: list[containers.Instance], now: datetime
) -> Shown:
    """The status GET /credentials/status shows. A version with files is `injected` once they
    are in every running replica, `pending` until then."""
    if version.expired(now) and version.status != "revoked":
        return "expired"
    if version.status == "injected" and not _in_every_replica(version, instances):
        return "pending"
    return version.status


def _in_every_replica(version: credentials.Version, instances: list[containers.Instance]) -> bool:
    running = (i for i in instances if i.state == "running")
    return all(version.in_place(i.replica, i.container_id) for i in running)
