"""Test helpers for the real Docker engine: open it or skip (fail under CI), label, sweep, and
the runs tests need that the service does not, made of the adapter's own calls."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from contextlib import suppress
from typing import NoReturn

import pytest

from service import errors
from service.docker import adapter
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


async def ping(docker: DockerAdapter) -> None:
    """Raise `DockerUnavailableError` unless the adapter's engine answers."""
    await docker.list_container_ids(run_labels())


async def open_docker_or_skip() -> DockerAdapter:
    """An adapter on the default engine (DOCKER_HOST or the local socket); close it yourself."""
    docker = DockerAdapter()
    try:
        await ping(docker)
    except DockerUnavailableError as exc:
        await docker.close()
        docker_required(exc.message)
    return docker


async def remove_containers(docker: DockerAdapter, labels: Mapping[str, str]) -> int:
    """Force-remove every container carrying all of `labels`; return how many were found."""
    found = await docker.list_container_ids(labels)
    for container_id in found:
        await docker.remove_container(container_id)
    return len(found)


async def sweep_test_containers(docker: DockerAdapter) -> int:
    """Remove every container this test session labelled; return how many there were."""
    return await remove_containers(docker, run_labels())


async def run_to_completion(
    docker: DockerAdapter,
    image: str,
    command: list[str],
    labels: dict[str, str],
    timeout_s: float = 60,
) -> tuple[int, str]:
    """`run_container_to_completion` of a hardened container named by Docker's rules."""
    spec = adapter.ContainerSpec(
        name=f"dtma-run-{secrets.token_hex(6)}", image=image, labels=labels, command=command
    )
    return await docker.run_container_to_completion(spec, timeout_s)


async def run_detached(
    docker: DockerAdapter,
    *,
    name: str,
    image: str,
    labels: dict[str, str],
    env: dict[str, str] | None = None,
    container_port: int = 8000,
    memory_mb: int | None = None,
) -> tuple[str, int]:
    """Create and start a hardened container; return its id and its published host port.

    A container that does not start, or stops before its port is known, is removed.
    """
    spec = adapter.ContainerSpec(
        name=name,
        image=image,
        labels=labels,
        env=env or {},
        container_port=container_port,
        memory_mb=memory_mb,
    )
    container_id = await docker.create_container(spec)
    try:
        port = await docker.start_container(container_id)
        if port is None:
            info = await docker.inspect_container(container_id)
            raise adapter.DockerOperationError(
                f"container {name} has no host port for {container_port}/tcp "
                f"(status {info.state}, exit code {info.exit_code})"
            )
    except BaseException:
        with suppress(errors.ServiceError):
            await docker.remove_container(container_id)
        raise
    return container_id, port
