"""Fixtures shared by the suite: real databases (SQLite files, PostgreSQL) and the app."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from eventstore.store import EventStore
from service.app import create_app
from service.docker.adapter import DockerAdapter
from service.settings import Settings
from tests.support.databases import fresh_postgres_database, open_migrated_store
from tests.support.docker import open_docker_or_skip, sweep_test_containers
from tests.support.docker_cli import sweep_test_networks
from tests.support.images import ensure_busybox_image
from tests.support.mcp_image import ensure_mcp_image

pytest_plugins = ["tests.support.watchdog"]

TOKEN = "test-token-" + secrets.token_hex(16)  # 43 characters: tokens under 32 are refused


def isolating_labels() -> dict[str, str]:
    from tests.support.docker import TEST_RUN_ID, TEST_RUN_LABEL

    return {TEST_RUN_LABEL: TEST_RUN_ID, "dtma.test-app": secrets.token_hex(4)}


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dtma.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    """A migrated store on each database; the same tests run against both."""
    opened = await open_migrated_store(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def docker() -> AsyncIterator[DockerAdapter]:
    """The real engine (skipped without one, failed under CI); whatever this session's tests
    labelled is swept afterwards."""
    adapter = await open_docker_or_skip()
    try:
        yield adapter
    finally:
        await sweep_test_containers(adapter)
        await sweep_test_networks(adapter)
        await adapter.close()


@pytest.fixture
async def mcp_image(docker: DockerAdapter) -> str:
    return await ensure_mcp_image(docker)


@pytest.fixture
async def busybox(docker: DockerAdapter) -> str:
    return await ensure_busybox_image(docker)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dtma.db'}"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "auth_token": TOKEN,
            # Every app a test starts sees only its own containers: its reconciler must never
            # take another test's (or a developer's) managed containers for orphans.
            "owner_labels": isolating_labels(),
            "database_url": f"sqlite:///{tmp_path / 'dtma.db'}",
            "key_file": str(tmp_path / "dtma.key"),
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., object], make_settings: Callable[..., Settings]
) -> TestClient:  # type: ignore[type-arg]
    """The service on a SQLite file, over real HTTP."""
    made: TestClient = await aiohttp_client(create_app(make_settings()))  # type: ignore[misc,type-arg]
    return made
