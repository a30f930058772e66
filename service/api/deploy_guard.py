"""Roles must not leak into each other: a deploy that changes what runs in a server holding
credentials (its image, command or init containers) would hand those credentials to code the
caller chose, so it needs an `admin` token, not `operator`."""

from __future__ import annotations

from aiohttp import web

from projections import credentials, groups, specs
from service import errors
from service.access import tokens
from service.api.keys import runner_key
from service.api.middlewares import role_key
from service.handling import commands, decisions


async def require_admin_to_change_code(request: web.Request, command: commands.DeployGroup) -> None:
    """403 unless the caller is admin, or no server it changes the code of holds credentials."""
    if tokens.allows(request.get(role_key, "admin"), "admin"):
        return
    runner = request.app[runner_key]
    await runner.current()
    declared = runner.state(groups.PROJECTION).servers
    held = runner.state(credentials.PROJECTION).servers
    for spec in command.mcp_servers:
        server = declared.get(spec.id)
        holds = spec.id in held and held[spec.id].active() is not None
        if holds and code_changed(server.spec if server else None, decisions.server_spec(spec)):
            raise errors.ForbiddenError(
                f"{spec.id!r} holds credentials: changing its image, command or init "
                "containers needs a token of role admin",
                details=[{"needed": "admin", "role": request[role_key], "field": spec.id}],
            )


def code_changed(current: specs.ServerSpec | None, new: specs.ServerSpec) -> bool:
    """Whether `new` would run other code than `current` (None: nothing runs yet)."""
    if current is None:
        return True
    return (current.image, current.command, current.init_containers) != (
        new.image,
        new.command,
        new.init_containers,
    )
