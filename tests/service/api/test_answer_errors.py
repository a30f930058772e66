"""An answer that does not fit its model is the service's bug, a 500 that says nothing of it;
a request that does not fit its model stays the caller's 422."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from service.api import middlewares, schemas
from service.handling import commands


async def drifted_answer(_request: web.Request) -> web.Response:
    schemas.Liveness.model_validate(
        {"status": "ok", "position": "not-a-position-7f3a", "instance": "i"}
    )
    raise AssertionError("unreachable: the answer does not fit its model")


async def bad_request(_request: web.Request) -> web.Response:
    commands.RemoveGroup(group_id="Not An Id")
    raise AssertionError("unreachable: the id does not fit its pattern")


@pytest.fixture
async def stand_in(aiohttp_client: Callable[..., Any]) -> Any:
    """The real error middleware in front of two routes that fail validation."""
    app = web.Application(middlewares=[middlewares.error_middleware])
    app.router.add_get("/answer", drifted_answer)
    app.router.add_get("/request", bad_request)
    return await aiohttp_client(app)


async def test_an_answer_that_does_not_fit_its_model_is_a_500(
    stand_in: Any, caplog: pytest.LogCaptureFixture
) -> None:
    response = await stand_in.get("/answer")

    assert response.status == 500
    error = (await response.json())["error"]
    assert (error["code"], error["message"], error["details"]) == (
        "internal_error",
        "internal error",
        [],
    )
    assert "does not fit its model Liveness" in caplog.text
    assert "7f3a" not in caplog.text  # the values stay out of the log


async def test_a_request_that_does_not_fit_its_model_is_still_a_422(stand_in: Any) -> None:
    response = await stand_in.get("/request")

    assert response.status == 422
    assert (await response.json())["error"]["details"][0]["field"] == "group_id"
