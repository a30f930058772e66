"""Credential decisions: the read models and a command in, refusals or the event out."""

from __future__ import annotations

import pytest

from projections import credentials, events, groups
from service import errors
from service.credentials import decisions
from service.handling import commands

SEALED = ("key-1", (), ())


def injected(*agents: str) -> credentials.CredentialsState:
    """Versions 1, 2, ... of server `s`, for these agents in turn."""
    state = credentials.CredentialsState()
    for number, agent in enumerate(agents, start=1):
        event = events.CredentialsInjected(
            server_id="s", agent_id=agent, version=number, key_id=f"key-{number}", secrets=()
        )
        envelope = events.Envelope(number, credentials.stream_of("s"), number, "T")
        state = credentials.apply(state, event, envelope)
    return state


def test_an_injection_is_the_servers_next_version() -> None:
    event = decisions.inject(injected("a"), "s", "a", SEALED, "request", None)
    assert (event.version, event.agent_id, event.key_id) == (2, "a", "key-1")


def test_an_injection_for_another_agent_is_refused_while_one_is_bound() -> None:
    with pytest.raises(errors.ConflictError) as refused:
        decisions.inject(injected("a"), "s", "b", SEALED, "request", None)
    assert refused.value.code == "bound_to_another_agent"


def test_a_first_injection_binds_whoever_asks() -> None:
    assert decisions.inject(injected(), "s", "b", SEALED, "backend", None).version == 1


def test_an_injection_for_an_unknown_server_is_refused_with_404() -> None:
    command = commands.InjectCredentials(mcp_server_id="nowhere", agent_id="a")
    with pytest.raises(errors.NotFoundError):
        decisions.server_to_inject(groups.GroupsState(), command)


def test_a_rotation_keeps_the_bound_agent() -> None:
    command = commands.RotateCredentials(mcp_server_id="s")
    assert decisions.agent_to_rotate(injected("a"), command) == "a"
    with pytest.raises(errors.NotFoundError):
        decisions.agent_to_rotate(injected(), command)


def test_a_revocation_names_every_live_version_and_its_key() -> None:
    revoked = decisions.revoke(injected("a", "a"), commands.RevokeCredentials(mcp_server_id="s"))
    assert (revoked.versions, revoked.key_ids) == ((1, 2), ("key-1", "key-2"))
    with pytest.raises(errors.NotFoundError):
        decisions.revoke(injected(), commands.RevokeCredentials(mcp_server_id="s"))
