"""The auditor's routes: `GET /audit/verify` (the chain, the signed checkpoints under the
service's audit key) and `GET /audit/public-key` (that key, to keep out of band)."""

from __future__ import annotations

from aiohttp import web

from eventstore import audit, signing
from service import errors
from service.api import routes, schemas, wire
from service.api.keys import ring_key, store_key
from service.api.routes import Param, Route
from service.audit import checkpoints


async def verify(request: web.Request) -> web.Response:
    signer = await request.app[ring_key].audit_signer()
    trusted = signing.trusted_keys([signer.verify_key])
    heads = known_heads(request.query.getall("against", []))
    report = await audit.audit(request.app[store_key], trusted, heads)
    found = checkpoints.chain_report(report, trusted, "service")
    # the contract: present only when there is one (the CLI prints it as null)
    unset = {"first_bad_position"} if found.first_bad_position is None else set()
    return wire.answer(found, exclude=unset)


def known_heads(texts: list[str]) -> list[audit.KnownHead]:
    """`?against=POSITION:HASH`, repeatable: heads the auditor recorded before."""
    try:
        return [audit.KnownHead.parse(text) for text in texts]
    except ValueError as exc:
        raise errors.ValidationFailedError(
            f"query parameter against: {exc}",
            details=[{"field": "against", "message": str(exc)}],
        ) from None


async def public_key(request: web.Request) -> web.Response:
    signer = await request.app[ring_key].audit_signer()
    return wire.answer(checkpoints.audit_public_key(signer.verify_key))


ROUTES = (
    Route(
        "GET",
        "/audit/verify",
        verify,
        "Check the whole hash chain, every signed checkpoint and the known heads given",
        {**routes.ok("the verdict", schemas.ChainReport), **routes.failures(401, 422, 503)},
        params=(
            Param(
                "against",
                "query",
                {
                    "type": "array",
                    "items": {"type": "string", "pattern": audit.KNOWN_HEAD_PATTERN},
                },
                "a head recorded earlier, POSITION:HASH; repeatable",
            ),
        ),
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
