"""Fixtures of the Docker adapter's tests: a container that runs until the test is done."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from service.docker.adapter import DockerAdapter
from tests.support.docker import TEST_RUN_ID, TEST_RUN_LABEL
from tests.support.docker_cli import docker_cli

Sleeper = Callable[..., Coroutine[Any, Any, str]]


@pytest.fixture
async def sleeper(docker: DockerAdapter, busybox: str) -> AsyncIterator[Sleeper]:
    """Makes running busybox containers (`docker run` options as arguments); returns each id.
    They are removed afterwards."""
    made: list[str] = []

    async def run(*options: str) -> str:
        name = f"dtma-test-sleeper-{secrets.token_hex(4)}"
        label = f"{TEST_RUN_LABEL}={TEST_RUN_ID}"
        container_id = await docker_cli(
            "run", "--detach", "--name", name, "--label", label, *options, busybox, "sleep", "600"
        )
        made.append(container_id.strip())
        return made[-1]

    try:
        yield run
    finally:
        for container_id in made:
            await docker.remove_container(container_id)
