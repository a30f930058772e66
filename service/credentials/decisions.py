"""Pure credential decisions: the read models and a command in, refusals or the event to append
out. No I/O: opening values, sealing them and fetching them from the backend happen around."""

from __future__ import annotations

from typing import Literal

from projections import credentials, events, groups
from service import errors
from service.credentials import values
from service.handling import commands

Source = Literal["request", "backend", "oauth", "expiry"]


def server_to_inject(
    desired: groups.GroupsState, command: commands.InjectCredentials
) -> groups.ServerState:
    server = desired.servers.get(command.mcp_server_id)
    if server is None:
        raise errors.NotFoundError(f"no MCP server {command.mcp_server_id!r}")
    return server


def refuse_another_agent(
    state: credentials.CredentialsState, server_id: str, agent_id: str
) -> None:
    """Credentials stay bound to one agent until they are revoked."""
    current = state.of(server_id).active()
    if current is not None and current.agent_id != agent_id:
        raise errors.ConflictError(
            f"the credentials of {server_id!r} are bound to another agent; "
            "revoke them (DELETE /credentials/{id}) before injecting for a new one",
            code="bound_to_another_agent",
        )


def inject(
    state: credentials.CredentialsState,
    server_id: str,
    agent_id: str,
    sealed: values.Sealed,
    source: Source,
    expires_at: str | None,
) -> events.CredentialsInjected:
    """The server's next version, for the agent its credentials are bound to (if any)."""
    refuse_another_agent(state, server_id, agent_id)
    key_id, secrets, grants = sealed
    return events.CredentialsInjected(
        server_id=server_id,
        agent_id=agent_id,
        version=state.next_version(server_id),
        key_id=key_id,
        secrets=secrets,
        source=source,
        expires_at=expires_at,
        oauth=grants,
    )


def agent_to_rotate(
    state: credentials.CredentialsState, command: commands.RotateCredentials
) -> str:
    """The agent the current version is bound to: a rotation keeps it."""
    current = state.of(command.mcp_server_id).active()
    if current is None:
        raise errors.NotFoundError(
            f"{command.mcp_server_id!r} has no credentials to rotate; inject them first"
        )
    return current.agent_id


def revoke(
    state: credentials.CredentialsState, command: commands.RevokeCredentials
) -> events.CredentialsRevoked:
    """Every version whose data key still exists: the key is destroyed after the append."""
    live = [v for v in state.of(command.mcp_server_id).versions.values() if not v.forgotten]
    if not live:
        raise errors.NotFoundError(f"no credentials of {command.mcp_server_id!r} to revoke")
    return events.CredentialsRevoked(
        server_id=command.mcp_server_id,
        versions=tuple(v.version for v in live),
        key_ids=tuple(v.key_id for v in live),
    )
