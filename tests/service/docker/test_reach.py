"""`reach`: which container this process runs in, as the engine confirms it, and the reach the
setting and that container make."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from service.docker import reach
from service.docker.adapter import DockerAdapter
from tests.service.docker.conftest import Sleeper

pytestmark = pytest.mark.docker

MOUNTED = "93 75 254:0 /var/lib/docker/containers/{id}/{file} /etc/{file} rw - ext4 /dev/vda rw"
UNRELATED = "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw"


def mountinfo(container_id: str) -> str:
    lines = [UNRELATED] + [MOUNTED.format(id=container_id, file=f) for f in ("hosts", "hostname")]
    return "\n".join(lines) + "\n"


def proc(tmp_path: Path, container_id: str | None = None) -> Path:
    """A /proc whose `self/mountinfo` shows the files Docker mounts into `container_id`."""
    (tmp_path / "self").mkdir(parents=True, exist_ok=True)
    (tmp_path / "self" / "mountinfo").write_text(mountinfo(container_id) if container_id else "")
    (tmp_path / "self" / "cgroup").write_text("0::/\n")  # cgroup v2 in a private namespace
    return tmp_path


def test_reads_candidates_from_mounts_then_cgroups_then_an_id_like_hostname() -> None:
    mounted, grouped = "e6" * 32, "7a" * 32
    cgroup = f"4:memory:/docker/{grouped}\n0::/system.slice/docker-{mounted}.scope\n"

    found = reach.candidates(mountinfo(mounted), cgroup, "abcdef012345")

    assert found == [mounted, grouped, "abcdef012345"]
    assert reach.candidates(UNRELATED, "0::/\n", "vm") == []


async def test_finds_the_running_container_whose_files_are_mounted_here(
    docker: DockerAdapter, sleeper: Sleeper, tmp_path: Path
) -> None:
    container_id = await sleeper()

    found = await reach.own_container(docker, proc(tmp_path, container_id), hostname="vm")

    assert found is not None and found.id == container_id


async def test_finds_its_container_by_a_hostname_that_begins_its_id(
    docker: DockerAdapter, sleeper: Sleeper, tmp_path: Path
) -> None:
    container_id = await sleeper()

    found = await reach.own_container(docker, proc(tmp_path), hostname=container_id[:12])

    assert found is not None and found.id == container_id


async def test_an_id_the_engine_does_not_know_or_a_container_merely_named_so_is_not_ours(
    docker: DockerAdapter, sleeper: Sleeper, tmp_path: Path
) -> None:
    hexadecimal_name = secrets.token_hex(6)  # Docker finds a container by its name too
    await sleeper("--hostname", "elsewhere")
    named = await sleeper("--name", hexadecimal_name)

    assert not named.startswith(hexadecimal_name)
    assert await reach.own_container(docker, proc(tmp_path, "0" * 64), hostname="vm") is None
    assert await reach.own_container(docker, proc(tmp_path), hostname=hexadecimal_name) is None


async def test_network_reach_in_a_container_on_a_bridge_host_reach_on_the_host_network(
    docker: DockerAdapter, sleeper: Sleeper, tmp_path: Path
) -> None:
    bridged = await sleeper()
    on_host = await sleeper("--network", "host")

    inside = await reach.detect(docker, "auto", proc(tmp_path / "a", bridged), hostname="vm")
    hosted = await reach.detect(docker, "auto", proc(tmp_path / "b", on_host), hostname="vm")

    assert inside == reach.Reach("network", bridged)
    assert hosted == reach.HOST  # its loopback is the host's: nothing to attach


async def test_outside_a_container_auto_is_host_reach_and_network_attaches_nothing(
    docker: DockerAdapter, sleeper: Sleeper, tmp_path: Path
) -> None:
    bridged = await sleeper()

    assert await reach.detect(docker, "auto", proc(tmp_path), hostname="vm") == reach.HOST
    assert await reach.detect(docker, "network", proc(tmp_path), hostname="vm") == reach.Reach(
        "network"
    )
    forced = await reach.detect(docker, "host", proc(tmp_path, bridged), hostname="vm")
    assert forced == reach.HOST
