"""The auditor's routes: `GET /audit/verify` (the chain, the signed checkpoints under the
service's audit key) and `GET /audit/public-key` (that key, to keep out of band)."""

from __future__ import annotations

from aiohttp import web

from eventstore import audit, signing
from service.api import routes, schemas
from service.api.routes import Route
from service.audit import public_key_json, report_json
from service.keys import ring_key, store_key


async def verify(request: web.Request) -> web.Response:
    signer = await request.app[ring_key].audit_signer()
    trusted = signing.trusted_keys([signer.verify_key])
    report = await audit.audit(request.app[store_key], trusted)
    body = report_json(report, trusted, "service")
    if body["firstBadPosition"] is None:  # the contract: present only when there is one
        del body["firstBadPosition"]
    return web.json_response(body)


async def public_key(request: web.Request) -> web.Response:
    signer = await request.app[ring_key].audit_signer()
    return web.json_response(public_key_json(signer.verify_key))


ROUTES = (
    Route(
        "GET",
        "/audit/verify",
        verify,
        "Check the whole hash chain and every signed checkpoint",
        {**routes.ok("the verdict", schemas.ChainReport), **routes.failures(401, 503)},
        tag="events",
    ),
    Route(
        "GET",
        "/audit/public-key",
        public_key,
        "The Ed25519 public key that signs the log's checkpoints",
        {**routes.ok("the key", schemas.AuditPublicKey), **routes.failures(401, 503)},
        tag="events",
    ),
)


def add_routes(app: web.Application) -> None:
    routes.register(app, ROUTES)
