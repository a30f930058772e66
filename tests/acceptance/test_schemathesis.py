"""schemathesis against `dtma serve` on a real port, a SQLite file and the real Docker engine:
for every documented operation but the endless SSE streams, no answer is a 5xx and every answer's
status, content type and body are as /openapi.json says: with the admin token, and again (fewer
cases) with a token of each other role, whose refusals must be the documented 403.

The cases come from the document the service's route table generates, made here at collection
(schemathesis' lazy `from_fixture` does not run on pytest 9.2); the first test checks that it is
the very document the running service serves.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api import openapi, routes
from service.app import create_app
from service.handling.commands import ID_PATTERN
from service.settings import Settings
from tests.acceptance.conftest import sweep
from tests.conftest import AUTH, TOKEN, isolating_labels
from tests.support.docker import open_docker_or_skip
from tests.support.service_process import Service

pytestmark = pytest.mark.docker

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Groups made by random deploys land in these, so the test makes two Docker networks at most.
GROUPS = ("st-a", "st-b")
MAX_WAIT_MS = 1_000  # `?wait=true&timeout=`: a random deploy need not be waited on for long
REQUEST_TIMEOUT_S = 30
VERSION = "under-test"
# A token of every role but admin (DTMA_AUTH_TOKEN), listed in the service's DTMA_TOKENS_FILE.
ROLE_TOKENS = {
    role: f"{role}-{secrets.token_hex(16)}" for role in ("operator", "reader", "metrics", "agent")
}


def generated_document() -> dict[str, Any]:
    """What the service's route table makes of itself (no database is opened for this)."""
    settings = Settings(auth_token=TOKEN, database_url="sqlite:///unused.db", key_file="unused")
    return openapi.document(routes.table(create_app(settings)), VERSION)


DOCUMENT = generated_document()
# 504 is the contract's answer to a `?wait=true` or `?minPosition=` that ran out of time, not a
# server error; status_code_conformance still holds each operation to the statuses it documents.
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "504"]}}}
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).exclude(path_regex=r"/stream$")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    """One service for the module's cases; whatever they made in Docker is swept after."""
    workdir, labels = tmp_path_factory.mktemp("schemathesis"), isolating_labels()
    docker = await open_docker_or_skip()
    tokens = workdir / "tokens"
    tokens.write_text(
        "".join(
            f"{role}-token {role} {token}{' agent-1' if role == 'agent' else ''}\n"
            for role, token in ROLE_TOKENS.items()
        )
    )
    tokens.chmod(0o600)
    service = Service(
        f"sqlite:///{workdir / 'dtma.db'}", workdir, labels, DTMA_TOKENS_FILE=str(tokens)
    )
    try:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            await service.start(http)
        yield service
    finally:
        await service.stop()
        await sweep(docker, labels)
        await docker.close()


async def test_the_cases_come_from_the_document_the_service_serves(served: Service) -> None:
    async with (
        aiohttp.ClientSession(headers=AUTH) as http,
        http.get(f"{served.url}/openapi.json") as response,
    ):
        served_document = await response.json()
    assert served_document == {**DOCUMENT, "info": served_document["info"]}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_answer_is_a_server_error_and_every_answer_is_as_documented(
    case: schemathesis.Case, served: Service
) -> None:
    contained(case)
    case.call_and_validate(
        base_url=served.url, headers=AUTH, checks=CHECKS, timeout=REQUEST_TIMEOUT_S
    )


@schema.parametrize()
@pytest.mark.parametrize("role", list(ROLE_TOKENS))
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_role_gets_no_server_error_and_only_documented_answers(
    case: schemathesis.Case, served: Service, role: str
) -> None:
    contained(case)
    case.call_and_validate(
        base_url=served.url,
        headers={"Authorization": f"Bearer {ROLE_TOKENS[role]}"},
        checks=CHECKS,
        timeout=REQUEST_TIMEOUT_S,
    )


def contained(case: schemathesis.Case) -> None:
    """Keep a random case quick and its Docker objects few: no long read-your-writes or
    `?wait=true` waits, and new groups only under the names in GROUPS."""
    query = case.query or {}
    if _number(query.get("minPosition")) > 1:
        query["minPosition"] = 1
    if _number(query.get("timeout")) > MAX_WAIT_MS:
        query["timeout"] = MAX_WAIT_MS
    body = case.body
    key = {"/mcp-servers/deploy": "groupId", "/container-groups": "id"}.get(case.path)
    if key and isinstance(body, dict) and _is_id(body.get(key)):
        body[key] = GROUPS[len(body[key]) % len(GROUPS)]


def _number(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


def _is_id(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(ID_PATTERN, value) is not None
