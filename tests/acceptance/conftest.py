"""The service end to end: HTTP, a real Docker engine and a real database."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.app import create_app
from service.docker.adapter import DockerAdapter
from service.settings import Settings
from tests.conftest import TOKEN
from tests.support.docker import TEST_RUN_ID, TEST_RUN_LABEL, remove_containers
from tests.support.openapi_answers import OpenApiCheckedClient
from tests.support.registry import Registry, start_registry, stop_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real registry with htpasswd auth on 127.0.0.1, for this session's tests."""
    process, running = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield running
    finally:
        stop_registry(process)


@pytest.fixture
def owner_labels() -> dict[str, str]:
    """Labels that make this test's service see only this test's containers and networks."""
    return {TEST_RUN_LABEL: TEST_RUN_ID, "dtma.test-app": secrets.token_hex(4)}


@pytest.fixture
def service_settings(tmp_path: Path, owner_labels: dict[str, str]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "auth_token": TOKEN,
            "database_url": f"sqlite:///{tmp_path / 'dtma.db'}",
            "key_file": str(tmp_path / "dtma.key"),
            "owner_labels": owner_labels,
            "reconcile_interval_s": 1.0,
            **overrides,
        }
        return Settings(**values)

    return make


@pytest.fixture
async def service(
    aiohttp_client: Callable[..., Any],
    service_settings: Callable[..., Settings],
    docker: DockerAdapter,
    owner_labels: dict[str, str],
) -> AsyncIterator[Any]:
    client = await aiohttp_client(create_app(service_settings()))
    try:
        yield client
    finally:
        await client.close()
        await sweep(docker, owner_labels)


async def sweep(docker: DockerAdapter, owner_labels: dict[str, str]) -> None:
    """Whatever the test left behind: its containers, then its networks."""
    await remove_containers(docker, owner_labels)
    for name, labels in await docker.list_managed_networks():
        if all(labels.get(k) == v for k, v in owner_labels.items()):
            await docker.remove_network(name)


@pytest.fixture
def aiohttp_client_cls() -> type[OpenApiCheckedClient]:
    """Every JSON answer the acceptance tests receive is held to the served OpenAPI document."""
    return OpenApiCheckedClient
