"""`dtma skip POSITION --reason TEXT`: record that every fold passes over an event this release
cannot read, so that stopped projections go on. The event stays in the log and the chain; the
skip is an event too, with who asked and why."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from eventstore import records
from projections import events, skips
from service import app
from service import settings as service_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("position", type=int, help="the position of the event to pass over")
    parser.add_argument("--reason", required=True, help="why, for the auditors (kept in the log)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="skip it even though this release reads it (a fold that fails on it, say)",
    )


async def run(settings: service_settings.Settings, args: argparse.Namespace) -> int:
    store = await app.open_store(settings)
    try:
        page = await store.read_all(args.position - 1, 1) if args.position > 0 else []
        if not page or page[0].position != args.position:
            return _refused(f"there is no event at position {args.position}")
        recorded = page[0]
        refusal = _refusal(recorded, args.force)
        if refusal:
            return _refused(refusal)
        skipped = await skips.load(store, events.CATALOGUE)
        if skipped.get(recorded.position) != recorded.hash:
            event = events.EventSkipped(
                position=recorded.position,
                event_type=recorded.type,
                hash=recorded.hash,
                reason=args.reason,
            )
            metadata = {"actor": f"operator:{getpass.getuser()}", "component": "dtma skip"}
            await store.append(
                skips.STREAM, [events.CATALOGUE.to_new_event(event)], None, metadata=metadata
            )
        print(json.dumps({"position": recorded.position, "type": recorded.type, "skipped": True}))
    finally:
        await store.close()
    return 0


def _refusal(recorded: records.RecordedEvent, force: bool) -> str | None:
    if recorded.stream_id == skips.STREAM:
        return "a skip cannot itself be skipped"
    if force:
        return None
    try:
        events.CATALOGUE.decode(recorded)
    except Exception:  # noqa: BLE001 - whatever stops a reader is what a skip is for
        return None
    return (
        f"the event at position {recorded.position} ({recorded.type}) reads fine; "
        "pass --force to skip it all the same"
    )


def _refused(message: str) -> int:
    print(f"dtma skip: {message}", file=sys.stderr)
    return 1
