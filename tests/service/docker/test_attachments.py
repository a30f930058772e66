"""`DockerAdapter.attachments` against the real engine: attaching a running container to a
network and detaching it, each as often as a reconcile pass may ask."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from service.docker.adapter import DockerAdapter, DockerNotFoundError
from tests.service.docker.conftest import Sleeper
from tests.support.docker import run_labels

pytestmark = pytest.mark.docker


@pytest.fixture
async def internal_network(docker: DockerAdapter) -> AsyncIterator[str]:
    """Ask for it before `sleeper`: it goes after the containers, which may still be on it."""
    name = f"dtma-test-attach-{secrets.token_hex(4)}"
    await docker.ensure_network(name, run_labels(), internal=True)
    try:
        yield name
    finally:
        await docker.remove_network(name)


async def test_attaches_to_an_internal_network_once_however_often_asked(
    docker: DockerAdapter, internal_network: str, sleeper: Sleeper
) -> None:
    container_id = await sleeper()

    await docker.attachments.connect(internal_network, container_id)
    await docker.attachments.connect(internal_network, container_id)

    networks = (await docker.inspect_container(container_id)).networks
    assert networks[internal_network]  # an address there
    assert "bridge" in networks  # where it was already


async def test_detaches_however_often_asked_so_that_the_network_can_go(
    docker: DockerAdapter, internal_network: str, sleeper: Sleeper
) -> None:
    container_id = await sleeper()
    await docker.attachments.connect(internal_network, container_id)

    await docker.attachments.disconnect(internal_network, container_id)
    await docker.attachments.disconnect(internal_network, container_id)
    await docker.remove_network(internal_network)

    assert internal_network not in (await docker.inspect_container(container_id)).networks
    assert internal_network not in dict(await docker.list_managed_networks())


async def test_an_absent_network_cannot_be_joined_and_need_not_be_left(
    docker: DockerAdapter, sleeper: Sleeper
) -> None:
    container_id = await sleeper()
    absent = f"dtma-test-absent-{secrets.token_hex(4)}"

    with pytest.raises(DockerNotFoundError):
        await docker.attachments.connect(absent, container_id)
    await docker.attachments.disconnect(absent, container_id)
