"""Credential routes: inject, revoke, status (names, never values) and the public key that
backends seal values to."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime

from aiohttp import web

from projections import containers
from projections import credentials as read_model
from service import errors, outbound
from service.api import routes, schemas, wire
from service.api.keys import backend_key, context_key, ring_key, runner_key, settings_key
from service.api.routes import Route
from service.api.wire import command_meta, read_command, wait_min_position
from service.credentials import handlers as credentials
from service.credentials import values
from service.handling import commands, handlers

ACCEPTED = 202


async def inject(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.InjectCredentials)
    refuse_unreachable(request, command.credentials)
    ring, meta = request.app[ring_key], await keyed_meta(request, body)
    backend = request.app.get(backend_key)
    answer = await credentials.inject(request.app[context_key], ring, command, meta, backend)
    return wire.answer_as(schemas.CredentialsAccepted, answer, status=ACCEPTED)


async def rotate(request: web.Request) -> web.Response:
    command, body = await read_command(request, commands.RotateCredentials)
    refuse_unreachable(request, command.credentials)
    ring, meta = request.app[ring_key], await keyed_meta(request, body)
    backend = request.app.get(backend_key)
    answer = await credentials.rotate(request.app[context_key], ring, command, meta, backend)
    return wire.answer_as(schemas.CredentialsAccepted, answer, status=ACCEPTED)


def refuse_unreachable(request: web.Request, spec: commands.CredentialsSpec | None) -> None:
    """422 for a token endpoint the refresher would refuse to ask (service/outbound.py)."""
    policy = outbound.OutboundPolicy(request.app[settings_key].outbound_allow)
    for n, provider in enumerate(spec.oauth_providers if spec is not None else ()):
        try:
            policy.check_url(provider.token_endpoint)
        except outbound.OutboundRefusedError as exc:
            field = f"credentials.oauthProviders.{n}.tokenEndpoint"
            raise errors.ValidationFailedError(
                "a tokenEndpoint may not be reached",
                details=[{"field": field, "message": str(exc)}],
            ) from None


async def keyed_meta(request: web.Request, body: bytes) -> handlers.CommandMeta:
    """The command's metadata, its request hash keyed: the body holds secrets."""
    private = await request.app[ring_key].box_keypair()
    keyed = credentials.keyed_request_hash(private, request.method, request.path_qs, body)
    return replace(command_meta(request, b""), request_hash=keyed)


async def revoke(request: web.Request) -> web.Response:
    command = commands.RevokeCredentials(mcp_server_id=wire.path_id(request))
    ring = request.app[ring_key]
    answer = await credentials.revoke(
        request.app[context_key], ring, command, command_meta(request, b"")
    )
    return wire.answer_as(schemas.CredentialsRevoked, answer, status=ACCEPTED)


async def status(request: web.Request) -> web.Response:
    runner = request.app[runner_key]
    await wait_min_position(request, runner)
    state = runner.state(read_model.PROJECTION)
    observed = runner.state(containers.PROJECTION)
    return wire.answer(statuses(state, observed, datetime.now(UTC)))


def statuses(
    state: read_model.CredentialsState, observed: containers.ContainersState, now: datetime
) -> schemas.CredentialStatuses:
    """Every server's current version: names, never values."""
    found = []
    for server_id, server in sorted(state.servers.items()):
        version = server.versions.get(server.current) if server.current is not None else None
        if version is not None:
            shown = credentials.shown_status(version, observed.of(server_id), now)
            found.append(credential_status(server_id, version, shown))
    return schemas.CredentialStatuses(found)


def credential_status(
    server_id: str, version: read_model.Version, shown: credentials.Shown
) -> schemas.CredentialStatus:
    tokens = {s.name: s.expires_at for s in version.secrets if s.kind == "oauth_access_token"}
    return schemas.CredentialStatus(
        mcp_server_id=server_id,
        agent_id=version.agent_id,
        version=version.version,
        names=list(version.names),
        modes=version.modes,
        status=shown,
        injected_at=version.injected_at,
        expires_at=version.expires_at,
        applied_to=sorted(version.applied),
        last_error=version.last_error,
        source=version.source,
        oauth_providers=[
            schemas.OAuthProviderStatus(
                provider=g.provider,
                token_expires_at=tokens.get(values.access_token_name(g.provider)),
                last_error=version.oauth_errors.get(g.provider),
            )
            for g in version.oauth
        ],
    )


async def public_key(request: web.Request) -> web.Response:
    private = await request.app[ring_key].box_keypair()
    encoded = base64.b64encode(bytes(private.public_key)).decode()
    return wire.answer(
        schemas.PublicKey(public_key=encoded, algorithm="X25519 SealedBox (libsodium)")
    )


COMMAND_ERRORS = routes.failures(400, 401, 404, 409, 413, 422, 503)

ROUTES = (
    Route(
        "POST",
        "/credentials/inject",
        inject,
        "Inject a server's credentials (from the body, or else from the backend)",
        {
            **routes.ok("accepted: the new version", schemas.CredentialsAccepted, ACCEPTED),
            **COMMAND_ERRORS,
        },
        body=commands.InjectCredentials,
        params=routes.COMMAND_HEADERS,
        tag="credentials",
        role="admin",
    ),
    Route(
        "PUT",
        "/credentials/rotate",
        rotate,
        "A new version of a server's credentials; the old one is retired",
        {
            **routes.ok("accepted: the new version", schemas.CredentialsAccepted, ACCEPTED),
            **COMMAND_ERRORS,
        },
        body=commands.RotateCredentials,
        params=routes.COMMAND_HEADERS,
        tag="credentials",
        role="admin",
    ),
    Route(
        "GET",
        "/credentials/status",
        status,
        "Every server's current credentials: names, never values",
        {
            **routes.ok("the statuses", schemas.CredentialStatuses),
            **routes.failures(401, 422, 503, 504),
        },
        params=(routes.MIN_POSITION,),
        tag="credentials",
    ),
    Route(
        "GET",
        "/credentials/public-key",
        public_key,
        "The service's X25519 public key, for backends that seal values",
        {**routes.ok("the key", schemas.PublicKey), **routes.failures(401, 503)},
        tag="credentials",
    ),
    Route(
        "DELETE",
        "/credentials/{id}",
        revoke,
        "Revoke a server's credentials: removed from its containers, their keys destroyed",
        {
            **routes.ok("accepted: the versions revoked", schemas.CredentialsRevoked, ACCEPTED),
            **routes.failures(401, 404, 409, 422, 503),
        },
        params=(routes.id_param("the MCP server's id"), *routes.COMMAND_HEADERS),
        tag="credentials",
        role="admin",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
