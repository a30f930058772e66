"""The API's tests: every JSON answer they receive is held to the served OpenAPI document."""

from __future__ import annotations

import pytest

from tests.support.openapi_answers import OpenApiCheckedClient


@pytest.fixture
def aiohttp_client_cls() -> type[OpenApiCheckedClient]:
    return OpenApiCheckedClient
