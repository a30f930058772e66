"""What a request sends can always be recorded and read back: JSON limits at the door, and one
bad request among concurrent good ones fails alone, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.settings import Settings
from tests.conftest import AUTH
from tests.support.api import error_of

Client: TypeAlias = TestClient[web.Request, web.Application]
TEMPLATES = "/config-templates"


def template(template_id: str, defaults: Any = None) -> dict[str, Any]:
    return {
        "id": template_id,
        "schema": {"type": "object"},
        "defaults": {"greeting": "hello"} if defaults is None else defaults,
    }


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def head_of(client: Client) -> int:
    answer = await (await client.get("/events?limit=1000", headers=AUTH)).json()
    return len(answer["events"])


@pytest.fixture
async def limited(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> Client:
    settings = make_settings(
        max_body_bytes=4096, max_json_depth=8, max_json_string=16, max_json_array=4
    )
    made: Client = await aiohttp_client(create_app(settings))
    return made


async def test_a_body_of_a_hundred_thousand_brackets_is_a_clean_422(client: Client) -> None:
    response = await client.post(TEMPLATES, data=b"[" * 100_000, headers=AUTH)
    error = await error_of(response, 422)
    assert error["code"] == "validation_failed" and "nests deeper" in error["message"]


async def test_json_nested_past_the_default_depth_is_refused_naming_where_and_nothing_is_appended(
    client: Client,
) -> None:
    body = template("deep", defaults={"config": nested(200)})
    error = await error_of(await client.post(TEMPLATES, json=body, headers=AUTH), 422)
    [detail] = error["details"]
    assert detail["field"].startswith("defaults.config.a.a.")
    assert "nests deeper than 32 levels" in detail["message"]
    assert await head_of(client) == 0
    fine = await client.post(TEMPLATES, json=template("shallow", {"x": nested(20)}), headers=AUTH)
    assert fine.status == 201, await fine.text()


@pytest.mark.parametrize(
    ("body", "status", "field", "message"),
    [
        (template("t", {"name": "x" * 17}), 422, "defaults.name", "longer than 16 characters"),
        (template("t", {"k" * 17: 1}), 422, "defaults", "longer than 16 characters"),
        (template("t", {"list": [1, 2, 3, 4, 5]}), 422, "defaults.list", "more than 4 items"),
        (template("t", {str(n): n for n in range(5)}), 422, "defaults", "more than 4 members"),
        (template("t", nested(8)), 422, "defaults.a.a.a.a.a.a.a", "deeper than 8 levels"),
        (template("t", {"q": "v" * 5000}), 413, None, ""),
    ],
)
async def test_the_json_limits_are_settings_and_each_is_a_clean_4xx(
    limited: Client, body: dict[str, Any], status: int, field: str | None, message: str
) -> None:
    error = await error_of(await limited.post(TEMPLATES, json=body, headers=AUTH), status)
    if field is not None:
        assert error["details"] == [{"field": field, "message": error["details"][0]["message"]}]
        assert message in error["details"][0]["message"]
    assert await head_of(limited) == 0


async def test_a_lone_surrogate_in_a_request_is_refused_at_the_door_naming_the_field(
    client: Client,
) -> None:
    raw = b'{"id": "s", "schema": {"type": "object"}, "defaults": {"who": "\\ud800"}}'
    error = await error_of(await client.post(TEMPLATES, data=raw, headers=AUTH), 422)
    assert error["details"][0]["field"] == "defaults.who"
    assert "surrogate" in error["details"][0]["message"]


@pytest.fixture
async def on_each_database(
    database_url: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[Client]:
    client: Client
    async with TestClient(
        TestServer(create_app(make_settings(database_url=database_url)))
    ) as client:
        yield client


async def test_bad_requests_mixed_into_concurrent_good_ones_fail_alone_on_both_databases(
    on_each_database: Client,
) -> None:
    client = on_each_database
    good = [template(f"good-{n}") for n in range(6)]
    bad = [
        b'{"id": "bad-1", "schema": {"type": "object"}, "defaults": {"x": "\\udfff"}}',
        b'{"id": "bad-2", "schema": {"type": "object"}, "defaults": ' + b"[" * 50_000 + b"}",
    ]
    requests = [client.post(TEMPLATES, json=body, headers=AUTH) for body in good[:3]]
    requests += [client.post(TEMPLATES, data=body, headers=AUTH) for body in bad]
    requests += [client.post(TEMPLATES, json=body, headers=AUTH) for body in good[3:]]
    responses = await asyncio.gather(*requests)

    statuses = [r.status for r in responses]
    assert statuses == [201] * 3 + [422, 422] + [201] * 3
    positions = sorted([(await r.json())["position"] for r in responses if r.status == 201])
    assert positions == [1, 2, 3, 4, 5, 6]
    assert await head_of(client) == 6
