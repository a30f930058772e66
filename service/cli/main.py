"""`dtma serve | migrate | rebuild | replay | events | audit | keys rotate | skip`: arguments to
Settings, then run the app or one coroutine. `rebuild`, `replay`, `events` and `audit` touch
neither Docker nor the backend; `replay`, `events` and `audit verify` open the database
read-only and never migrate it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import log as aiohttp_log
from aiohttp import web

import migrations
from eventstore import engines, errors, keyring, records, times
from projections import ALL, events
from projections import runner as projections_runner
from service import app, logs
from service import settings as service_settings
from service.api import events as api_events
from service.cli import audit as audit_cli
from service.cli import skip as skip_cli
from service.cli import terminal
from service.cli import tokens as token_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dtma", description="Droplet Tool Management Agent")
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    service_settings.add_arguments(common)
    commands.add_parser("serve", parents=[common], help="run the HTTP service")
    commands.add_parser("migrate", parents=[common], help="bring the database to the newest schema")
    commands.add_parser("rebuild", parents=[common], help="rebuild projections from the log")
    replay = commands.add_parser("replay", parents=[common], help="print the state as of a point")
    replay.add_argument("--until", help="a position, or an ISO 8601 time (UTC if no zone)")
    log = commands.add_parser("events", parents=[common], help="print the log as JSON lines")
    log.add_argument("--after", type=int, default=0)
    log.add_argument("--follow", action="store_true", help="keep printing new events")
    log.add_argument(
        "--format",
        choices=["auto", "json", "pretty"],
        default="auto",
        help="pretty: one line per event for a person; auto: pretty at a terminal, else JSON",
    )
    audit = commands.add_parser("audit", parents=[common], help="auditor's tools")
    audit_cli.add_arguments(audit)
    keys = commands.add_parser("keys", parents=[common], help="master key management")
    keys.add_argument("action", choices=["rotate"])
    skip = commands.add_parser(
        "skip", parents=[common], help="pass over an event that this release cannot read"
    )
    skip_cli.add_arguments(skip)
    token = commands.add_parser("token", help="API tokens and their roles")
    token_cli.add_arguments(token, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    conf = service_settings.CONF_FILE.read_text() if service_settings.CONF_FILE.is_file() else None
    try:
        settings = service_settings.load_settings(args_list, os.environ, conf)
    except service_settings.SettingsError as exc:
        print(f"dtma: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return run(args, settings)
    except (service_settings.SettingsError, migrations.RevisionError) as exc:
        print(f"dtma: {exc}", file=sys.stderr)
        return 2
    except (
        projections_runner.FoldError
    ) as exc:  # rebuild or replay met an event this release cannot read
        print(
            f"dtma: {exc}. Run a release that reads it, or pass over it with "
            f"`dtma skip {exc.failure.position} --reason ...`",
            file=sys.stderr,
        )
        return 1
    except errors.StoreError as exc:
        print(f"dtma: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace, settings: service_settings.Settings) -> int:
    if args.command == "serve":
        web.run_app(
            app.create_app(settings),
            host=settings.host,
            port=settings.port,
            shutdown_timeout=5,
            # aiohttp's one bound on a connection that sends its request head slowly (it has no
            # header-read timeout of its own): counted from the connection, or from the last
            # answer, the whole head must have come in by then or the connection is closed.
            keepalive_timeout=settings.header_timeout_s,
            access_log=aiohttp_log.access_logger if settings.access_log else None,
        )
        return 0
    coroutines = {
        "migrate": lambda: migrate(settings),
        "rebuild": lambda: rebuild(settings),
        "replay": lambda: replay(settings, args.until),
        "events": lambda: print_events(settings, args.after, args.follow, args.format),
        "audit": lambda: audit_cli.run(settings, args),
        "keys": lambda: rotate_keys(settings),
        "skip": lambda: skip_cli.run(settings, args),
        "token": lambda: token_cli.run(settings, args),
    }
    result: int = asyncio.run(coroutines[args.command]())
    return result


async def migrate(settings: service_settings.Settings) -> int:
    engine = engines.create_engine(settings.database_url)
    try:
        await migrations.upgrade(engine)
        print(json.dumps({"revision": await migrations.current_revision(engine)}))
    finally:
        await engine.dispose()
    return 0


async def rebuild(settings: service_settings.Settings) -> int:
    store = await app.open_store(settings)
    try:
        runner = projections_runner.ProjectionRunner(
            store, events.CATALOGUE, ALL, settings.snapshot_every
        )
        progress = terminal.Progress("rebuild", (await store.head())[0], sys.stderr)
        await runner.rebuild(progress.update)
        progress.finish()
        print(json.dumps({"position": runner.position, "projections": [p.name for p in ALL]}))
    finally:
        await store.close()
    return 0


async def replay(settings: service_settings.Settings, until: str | None) -> int:
    store = await app.open_reader(settings)
    try:
        folds = await projections_runner.fold_log(
            store, projections_runner.FoldSet(events.CATALOGUE, ALL), stop_after(until)
        )
        state = {name: s.model_dump(mode="json") for name, s in folds.states.items()}
        print(
            json.dumps(
                {
                    "position": folds.position,
                    "recordedAt": folds.recorded_at or None,
                    "state": state,
                },
                indent=2,
            )
        )
    finally:
        await store.close()
    return 0


def stop_after(until: str | None) -> Any:
    """The predicate that ends a replay: past a position, or recorded after a time."""
    if until is None:
        return lambda _event: False
    if until.isdigit():
        limit = int(until)
        return lambda event: event.position > limit
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        raise service_settings.SettingsError(
            f"--until must be a position or an ISO 8601 time, got {until!r}"
        ) from None
    cutoff = times.format_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return lambda event: event.recorded_at > cutoff


async def print_events(
    settings: service_settings.Settings, after: int, follow: bool, form: str
) -> int:
    show = _event_printer(form)
    store = await app.open_reader(settings)
    try:
        if follow:
            async for event in store.subscribe(after):
                show(event)
        else:
            while page := await store.read_all(after, 1000):
                for event in page:
                    show(event)
                after = page[-1].position
    finally:
        await store.close()
    return 0


def _event_printer(form: str) -> Callable[[records.RecordedEvent], None]:
    """JSON lines for programs; one line per event for a person (`pretty`, or `auto` at a
    terminal), coloured at a terminal."""
    if form == "json" or (form == "auto" and not sys.stdout.isatty()):
        return lambda event: print(json.dumps(api_events.event_json(event)), flush=True)
    colour = terminal.wants_colour(sys.stdout)
    width = terminal.terminal_width(sys.stdout)
    return lambda event: print(terminal.event_line(event, colour, width), flush=True)


async def rotate_keys(settings: service_settings.Settings) -> int:
    """A new master key: every data key re-wrapped, then the key file replaced (crash-safe).
    Prints the fingerprints, never a key."""
    key_file = Path(settings.key_file)
    engine = engines.create_engine(settings.database_url)
    try:
        await migrations.upgrade(engine)
        ring = await keyring.load_ring(engine, key_file)
        previous = ring.fingerprint
        rewrapped = await ring.rotate_master(keyring.MasterKey.generate(), key_file)
    except keyring.KeyFileError as exc:
        print(f"dtma: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(
        json.dumps({"fingerprint": ring.fingerprint, "previous": previous, "rewrapped": rewrapped})
    )
    return 0
