"""GET /credentials/status: every server's current credentials version, names never values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from projections import containers, credentials
from service.credentials import values


def _in_every_replica(version: credentials.Version, instances: list[containers.Instance]) -> bool:
    running = (i for i in instances if i.state == "running")
    return all(version.in_place(i.replica, i.container_id) for i in running)


def status_json(
    state: credentials.CredentialsState, observed: containers.ContainersState, now: datetime
) -> list[dict[str, Any]]:
    """GET /credentials/status: every server's current version — names, never values. A version
    with files is `injected` once they are in every running replica, `pending` until then."""
    found = []
    for server_id, server in sorted(state.servers.items()):
        version = server.versions.get(server.current) if server.current is not None else None
        if version is None:
            continue
        expired = version.expires_at is not None and version.expires_at < now.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        status = "expired" if expired and version.status != "revoked" else version.status
        if status == "injected" and not _in_every_replica(version, observed.of(server_id)):
            status = "pending"
        tokens = {s.name: s.expires_at for s in version.secrets if s.kind == "oauth_access_token"}
        found.append(
            {
                "mcpServerId": server_id,
                "agentId": version.agent_id,
                "version": version.version,
                "names": list(version.names),
                "modes": version.modes,
                "status": status,
                "injectedAt": version.injected_at,
                "expiresAt": version.expires_at,
                "appliedTo": sorted(version.applied),
                "lastError": version.last_error,
                "source": version.source,
                "oauthProviders": [
                    {
                        "provider": g.provider,
                        "tokenExpiresAt": tokens.get(values.access_token_name(g.provider)),
                        "lastError": version.oauth_errors.get(g.provider),
                    }
                    for g in version.oauth
                ],
            }
        )
    return found
