"""The Docker adapter against the real engine: runs, hardening, cleanup and error translation."""

from __future__ import annotations

import secrets

import pytest

from service.docker.adapter import DockerAdapter, DockerNotFoundError, DockerUnavailableError
from tests.support.docker import ping, run_detached, run_labels, run_to_completion

pytestmark = pytest.mark.docker


def case_labels() -> dict[str, str]:
    return {**run_labels(), "dtma.test-case": secrets.token_hex(4)}


async def test_runs_a_container_to_completion_and_removes_it(
    docker: DockerAdapter, busybox: str
) -> None:
    labels = case_labels()

    exit_code, output = await run_to_completion(
        docker, busybox, ["sh", "-c", "echo hello-from-dtma; exit 3"], labels
    )

    assert exit_code == 3
    assert output == "hello-from-dtma\n"
    assert await docker.list_container_ids(labels) == []


async def test_runs_containers_without_new_privileges_or_capabilities(
    docker: DockerAdapter, busybox: str
) -> None:
    exit_code, status = await run_to_completion(
        docker, busybox, ["cat", "/proc/self/status"], case_labels()
    )

    assert exit_code == 0
    assert "NoNewPrivs:\t1\n" in status
    assert "CapEff:\t0000000000000000\n" in status


async def test_reports_an_absent_image_as_not_found_without_pulling(
    docker: DockerAdapter,
) -> None:
    image = f"dtma-test/absent-{secrets.token_hex(4)}:1"

    with pytest.raises(DockerNotFoundError, match=f"image {image} not found") as raised:
        await run_to_completion(docker, image, ["true"], case_labels())

    assert raised.value.code == "docker_not_found"
    assert not await docker.image_exists(image)


@pytest.mark.parametrize("image", ["I4qI", "a:b:c", "a..b"])
async def test_reports_a_name_no_image_can_have_as_not_found(
    docker: DockerAdapter, image: str
) -> None:
    # Docker answers these with 400 "invalid reference format", not 404.
    with pytest.raises(DockerNotFoundError, match=f"image {image} not found"):
        await docker.inspect_image(image)
    assert not await docker.image_exists(image)


async def test_reports_an_absent_image_as_not_found_when_running_detached(
    docker: DockerAdapter,
) -> None:
    image = f"dtma-test/absent-{secrets.token_hex(4)}:1"
    name = f"dtma-test-{secrets.token_hex(4)}"
    labels = case_labels()

    with pytest.raises(DockerNotFoundError, match=f"image {image} not found"):
        await run_detached(docker, name=name, image=image, labels=labels)

    assert await docker.list_container_ids(labels) == []


async def test_removes_a_container_that_is_gone_already_without_complaint(
    docker: DockerAdapter,
) -> None:
    await docker.remove_container(secrets.token_hex(32))


async def test_reports_an_engine_that_does_not_answer_as_unavailable() -> None:
    socket = f"unix:///tmp/nonexistent-{secrets.token_hex(4)}.sock"

    async with DockerAdapter(socket) as docker:
        with pytest.raises(DockerUnavailableError) as raised:
            await ping(docker)

    assert raised.value.status == 503
    assert raised.value.code == "docker_unavailable"
