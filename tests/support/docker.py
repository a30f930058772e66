"""Test helpers for the real Docker engine: open it or skip (fail under CI), label, sweep."""

from __future__ import annotations

import os
import secrets
from typing import NoReturn

import pytest

from service.docker.adapter import DockerAdapter, DockerUnavailableError

TEST_RUN_LABEL = "dtma.test-run"
TEST_RUN_ID = secrets.token_hex(4)


def run_labels() -> dict[str, str]:
    """The label every container a test creates carries, so the session sweep finds it."""
    return {TEST_RUN_LABEL: TEST_RUN_ID}


def docker_required(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI, where a missing engine is a broken machine."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"Docker is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"Docker is not available: {reason}")


async def open_docker_or_skip() -> DockerAdapter:
    """An adapter on the default engine (DOCKER_HOST or the local socket); close it yourself."""
    docker = DockerAdapter()
    try:
        await docker.ping()
    except DockerUnavailableError as exc:
        await docker.close()
        docker_required(exc.message)
    return docker


async def sweep_test_containers(docker: DockerAdapter) -> int:
    """Remove every container this test session labelled; return how many there were."""
    return await docker.remove_containers(run_labels())
