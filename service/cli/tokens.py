"""`dtma token add NAME --role ROLE [--agent ID] | list | revoke NAME`: the API tokens kept in
the database. `add` prints the new token once; only its SHA-256 is stored. A running service
sees a change within a few seconds."""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from eventstore import engines
from service import settings as service_settings
from service.access import token_store, tokens


def add_arguments(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="token_action", required=True)
    add = actions.add_parser("add", parents=[common], help="make a token; prints it once")
    add.add_argument("name", help="1 to 63 of a-z 0-9 _ . -; events name it token:NAME")
    add.add_argument("--role", required=True, choices=tokens.ALL_ROLES)
    add.add_argument(
        "--agent", dest="agent_id", help="the agentId an agent token is bound to (role agent)"
    )
    actions.add_parser("list", parents=[common], help="names and roles, never tokens")
    revoke = actions.add_parser("revoke", parents=[common], help="refuse a token from now on")
    revoke.add_argument("name")


async def run(settings: service_settings.Settings, args: argparse.Namespace) -> int:
    engine = engines.create_engine(settings.database_url)
    try:
        await migrations.upgrade(engine)
        if args.token_action == "add":
            return await _add(engine, args)
        if args.token_action == "list":
            print(json.dumps({"tokens": await token_store.listed(engine)}))
            return 0
        if not await token_store.revoke(engine, args.name):
            print(f"dtma: no token named {args.name!r}", file=sys.stderr)
            return 1
        print(json.dumps({"name": args.name, "revoked": True}))
        return 0
    finally:
        await engine.dispose()


async def _add(engine: AsyncEngine, args: argparse.Namespace) -> int:
    name = tokens.check_name(args.name)
    role = tokens.check_role(args.role, args.agent_id)
    secret = tokens.new_token()
    try:
        await token_store.add(
            engine, tokens.Token(name, role, tokens.digest(secret), args.agent_id)
        )
    except token_store.TokenNameTakenError:
        print(f"dtma: a token named {name!r} exists; revoke it first", file=sys.stderr)
        return 1
    print(secret)
    print("dtma: keep this token now; it is not stored and cannot be shown again", file=sys.stderr)
    return 0
