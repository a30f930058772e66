"""Credentials fetched from the backend, for an inject without a body and for a renewal."""

from __future__ import annotations

from projections import groups
from service import errors
from service.backend import client
from service.handling import commands

BACKEND_PATH = "/get-agent-tool-credentials"


async def fetched(
    backend: client.BackendClient | None, server: groups.ServerState, agent_id: str
) -> commands.CredentialsSpec:
    """The backend's secrets for this agent and server, as if given in the body. A name the
    server declares in `credentialRequirements` keeps its mode there; others are `env`."""
    if backend is None:
        raise errors.ValidationFailedError(
            "no credentials given, and no backend is configured to fetch them from",
            details=[{"field": "credentials", "message": "required without DTMA_BACKEND_URL"}],
        )
    instance = server.spec.legacy.account_tool_instance_id if server.spec.legacy else server.spec.id
    try:
        answer = await backend.post_with_retries(
            BACKEND_PATH, {"agentId": agent_id, "accountToolInstanceId": instance}, attempts=3
        )
    except client.BackendError as exc:
        raise errors.UnavailableError(
            f"the backend did not supply the credentials: {exc}", code="backend_unavailable"
        ) from None
    secrets = answer.get("secrets") if isinstance(answer, dict) else None
    if not isinstance(secrets, dict):
        raise errors.UnavailableError(
            "the backend's answer has no secrets object", code="backend_unavailable"
        )
    modes = {r.name: r.mode for r in server.spec.credential_requirements}
    try:
        return commands.CredentialsSpec(
            api_keys=[
                commands.ApiKeySpec(name=name, value=value, mode=modes.get(name, "env"))
                for name, value in sorted(secrets.items())
                if value is not None
            ]
        )
    except ValueError:  # a name or value we would refuse from a caller too; never echoed
        raise errors.UnavailableError(
            "the backend supplied a credential name or value that is not acceptable",
            code="backend_unavailable",
        ) from None
