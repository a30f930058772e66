"""Secret files in running containers through the adapter: written, rotated, removed and read
back, by the container's shell or (without one) the archive API, and never left in what Docker
keeps about the container, its execs or its events."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import secrets
import tarfile
import time
from collections.abc import Awaitable
from typing import Any, Protocol

import aiohttp
import pytest

from service.docker import files as docker_files
from service.docker.adapter import (
    ContainerSpec,
    DockerAdapter,
    DockerConflictError,
    DockerNotFoundError,
    DockerOperationError,
)
from tests.support.docker import run_labels
from tests.support.docker_cli import build_image, docker_cli, inspect_raw, read_file
from tests.support.waiting import wait_until

pytestmark = pytest.mark.docker

SHELL_IMAGE = "dtma-test/busybox-sh:1"
PYTHON = "/usr/local/bin/python3"  # the MCP test image's interpreter: it has no shell
STAT = "import os, sys; s = os.stat(sys.argv[1]); print(oct(s.st_mode & 0o7777), s.st_uid)"


class Start(Protocol):
    def __call__(
        self, image: str, *, tmpfs: bool = ..., user: str | None = ..., run: bool = ...
    ) -> Awaitable[str]: ...


def new_secret() -> bytes:
    """Binary, with a marker of hex text to look for in Docker's JSON and in messages."""
    return b"\x00\xff secret-" + secrets.token_hex(16).encode() + b"\n\r\x1b"


def marker(secret: bytes) -> str:
    return secret.split(b"-", 1)[1][:32].decode()


@pytest.fixture
async def busybox_sh(docker: DockerAdapter, busybox: str) -> str:
    """The busybox image with /bin/sh, so that an exec finds a shell (busybox's own image runs
    its applets through its entrypoint)."""
    if not await docker.image_exists(SHELL_IMAGE):
        await build_image(SHELL_IMAGE, _shell_context(busybox))
    return SHELL_IMAGE


def _shell_context(base: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        dockerfile = f"FROM {base}\nCOPY bin/ /bin/\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    return buffer.getvalue()


@pytest.fixture
def start(docker: DockerAdapter) -> Start:
    """Start a container (swept with the session's); busybox ones sleep."""

    async def start(
        image: str, *, tmpfs: bool = True, user: str | None = None, run: bool = True
    ) -> str:
        command = ["sleep", "3600"] if image == SHELL_IMAGE else None
        spec = ContainerSpec(
            name=f"dtma-test-secrets-{secrets.token_hex(4)}",
            image=image,
            labels=run_labels(),
            command=command,
            secrets_tmpfs=tmpfs,
            user=user,
        )
        container_id = await docker.create_container(spec)
        if run:
            await docker.start_container(container_id)
        return container_id

    return start


async def in_container(container_id: str, *command: str) -> str:
    """`docker exec`, as the container's own user."""
    return await docker_cli("exec", container_id, *command)


async def in_shell(container_id: str, script: str) -> str:
    """`docker exec ... sh -c script`: busybox's applets are off the PATH; its shell runs them."""
    return await in_container(container_id, "sh", "-c", script)


async def start_marks(docker: DockerAdapter, container_id: str) -> tuple[object, int]:
    info = await docker.inspect_container(container_id)
    return info.started_at, info.restart_count


# With a shell, on a tmpfs


async def test_writes_a_secret_file_of_mode_0400_on_the_tmpfs(
    docker: DockerAdapter, busybox_sh: str, start: Start
) -> None:
    container_id = await start(busybox_sh)
    secret = new_secret()

    await docker.write_secret_file(container_id, "api.key", secret)

    assert await read_file(docker, container_id, "/run/secrets/api.key") == secret
    digest = await in_shell(container_id, "sha256sum < /run/secrets/api.key")
    assert digest.split()[0] == hashlib.sha256(secret).hexdigest()
    stat = await in_shell(container_id, "stat -c '%a %u %F' /run/secrets/api.key")
    assert stat == "400 0 regular file\n"
    assert await in_shell(container_id, "stat -f -c %T /run/secrets/api.key") == "tmpfs\n"
    mounts = await in_shell(container_id, "cat /proc/mounts")
    assert any(line.split()[1:3] == ["/run/secrets", "tmpfs"] for line in mounts.splitlines())
    assert await in_shell(container_id, "ls -A /run/secrets") == "api.key\n"


async def test_rotates_a_secret_file_without_restarting_the_container(
    docker: DockerAdapter, busybox_sh: str, start: Start
) -> None:
    container_id = await start(busybox_sh)
    before = await start_marks(docker, container_id)
    await docker.write_secret_file(container_id, "token", new_secret())
    rotated = new_secret()

    await docker.write_secret_file(container_id, "token", rotated)

    assert await read_file(docker, container_id, "/run/secrets/token") == rotated
    assert await in_shell(container_id, "ls -A /run/secrets") == "token\n"
    assert await start_marks(docker, container_id) == before
    assert (await docker.inspect_container(container_id)).running


async def test_writes_empty_and_large_secret_files_exactly(
    docker: DockerAdapter, busybox_sh: str, start: Start
) -> None:
    container_id = await start(busybox_sh)
    large = os.urandom(300 * 1024)

    await docker.write_secret_file(container_id, "empty", b"")
    await docker.write_secret_file(container_id, "large.bin", large)

    assert await read_file(docker, container_id, "/run/secrets/empty") == b""
    assert await read_file(docker, container_id, "/run/secrets/large.bin") == large


async def test_removes_a_secret_file_and_takes_an_absent_one_as_removed(
    docker: DockerAdapter, busybox_sh: str, start: Start
) -> None:
    container_id = await start(busybox_sh)
    before = await start_marks(docker, container_id)
    await docker.write_secret_file(container_id, "gcp.json", new_secret())

    assert await docker.remove_secret_file(container_id, "gcp.json") is True

    assert await read_file(docker, container_id, "/run/secrets/gcp.json") is None
    assert await in_shell(container_id, "ls -A /run/secrets") == ""
    assert await docker.remove_secret_file(container_id, "gcp.json") is True
    assert await start_marks(docker, container_id) == before


async def test_writes_a_secret_file_the_containers_non_root_user_reads(
    docker: DockerAdapter, busybox_sh: str, start: Start
) -> None:
    container_id = await start(busybox_sh, user="1000:1000")
    secret = new_secret()

    await docker.write_secret_file(container_id, "api.key", new_secret())
    await docker.write_secret_file(container_id, "api.key", secret)

    assert await read_file(docker, container_id, "/run/secrets/api.key") == secret  # as 1000
    stat = await in_shell(container_id, "stat -c '%a %u %g' /run/secrets/api.key")
    assert stat == "400 1000 1000\n"
    assert await docker.remove_secret_file(container_id, "api.key") is True


async def test_leaves_the_secret_out_of_docker_inspect_events_and_exec_records(
    docker: DockerAdapter, busybox_sh: str, start: Start
) -> None:
    container_id = await start(busybox_sh)
    secret = new_secret()
    since = f"{time.time() - 1:.3f}"

    await docker.write_secret_file(container_id, "api.key", secret)
    await docker.write_secret_file(container_id, "api.key", secret)  # the rotation path too

    execs = await wait_until(lambda: exec_records(container_id, since, count=2), within=10)
    for record in execs:
        assert record["ProcessConfig"]["arguments"][-2:] == ["dtma-secret", "api.key"]
        assert marker(secret) not in json.dumps(record)
    assert marker(secret) not in json.dumps(await inspect_raw("container", container_id))
    assert marker(secret) not in await container_events(container_id, since)


async def exec_records(container_id: str, since: str, *, count: int) -> list[dict[str, Any]]:
    """The engine's records of the execs run in the container since then, once there are
    `count`; found through their events (a container lists only its running execs)."""
    events = [
        json.loads(line) for line in (await container_events(container_id, since)).splitlines()
    ]
    ids = [e["Actor"]["Attributes"]["execID"] for e in events if e["Action"].startswith("exec_c")]
    return [await inspect_exec(exec_id) for exec_id in ids] if len(ids) >= count else []


async def container_events(container_id: str, since: str) -> str:
    until = f"{time.time():.3f}"
    return await docker_cli(
        *("events", "--since", since, "--until", until, "--filter", f"container={container_id}"),
        *("--format", "{{json .}}"),
    )


async def inspect_exec(exec_id: str) -> dict[str, Any]:
    """`GET /exec/{id}/json`, which the docker command line does not offer."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip("reading exec records needs the engine on a unix socket")
    connector = aiohttp.UnixConnector(path=host.removeprefix("unix://"))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"http://docker/exec/{exec_id}/json") as response,
    ):
        response.raise_for_status()
        record: dict[str, Any] = await response.json()
    return record


# Refusals and failures


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".", "..", "a b", "x" * 129, "é"])
async def test_refuses_a_name_that_is_not_a_plain_file_name_before_asking_docker(
    docker: DockerAdapter, name: str
) -> None:
    absent = secrets.token_hex(32)  # Docker would answer 404: the name is refused first

    with pytest.raises(ValueError, match="secret file name"):
        await docker.write_secret_file(absent, name, b"x")
    with pytest.raises(ValueError, match="secret file name"):
        await docker.remove_secret_file(absent, name)


async def test_reports_a_container_that_is_not_running_as_a_conflict_without_the_secret(
    docker: DockerAdapter, busybox_sh: str, start: Start
) -> None:
    container_id = await start(busybox_sh, run=False)
    secret = new_secret()

    with pytest.raises(DockerConflictError) as raised:
        await docker.write_secret_file(container_id, "api.key", secret)

    assert "api.key" in raised.value.message
    assert marker(secret) not in repr(raised.value) + repr(raised.value.__cause__)


async def test_a_removed_container_is_not_found_though_its_image_is_remembered(
    docker: DockerAdapter, busybox_sh: str, mcp_image: str, start: Start
) -> None:
    for image in (busybox_sh, mcp_image):  # the shell's exec and the archive API
        container_id = await start(image)
        await docker.write_secret_file(container_id, "api.key", new_secret())
        await docker.remove_container(container_id)

        with pytest.raises(DockerNotFoundError):
            await docker.write_secret_file(container_id, "api.key", new_secret())
        with pytest.raises(DockerNotFoundError):
            await read_file(docker, container_id, "/run/secrets/api.key")


async def test_reports_a_failed_write_with_the_shells_exit_code_and_without_the_secret(
    docker: DockerAdapter, busybox_sh: str, start: Start
) -> None:
    container_id = await start(busybox_sh, tmpfs=False, user="1000")  # may not create /run
    secret = new_secret()

    with pytest.raises(DockerOperationError, match="exited with code [1-9]") as raised:
        await docker.write_secret_file(container_id, "api.key", secret)

    assert "Permission denied" not in str(raised.value)  # the shell's words are not kept
    assert marker(secret) not in repr(raised.value) + repr(raised.value.__cause__)
    assert await read_file(docker, container_id, "/run/secrets/api.key") is None


async def test_a_shell_that_echoes_its_stdin_cannot_put_the_secret_into_the_error(
    docker: DockerAdapter, busybox_sh: str, start: Start
) -> None:
    container_id = await start(busybox_sh, tmpfs=False)
    # what the real script reads (a length line, then that many bytes), sent to stderr
    hostile = '#!/bin/busybox sh\\nread -r n\\n/bin/busybox head -c "$n" >&2\\nexit 1\\n'
    await in_container(
        container_id,
        "/bin/busybox",
        "sh",
        "-c",
        f"rm /bin/sh && printf '{hostile}' > /bin/sh && /bin/busybox chmod 755 /bin/sh",
    )
    secret = new_secret()

    with pytest.raises(DockerOperationError) as raised:
        await docker.write_secret_file(container_id, "api.key", secret)

    assert marker(secret) not in repr(raised.value) + repr(raised.value.__cause__)
    assert str(raised.value).endswith("the container's shell exited with code 1")


async def test_reads_an_absent_file_as_none(
    docker: DockerAdapter, busybox_sh: str, mcp_image: str, start: Start
) -> None:
    with_shell = await start(busybox_sh)
    without_shell = await start(mcp_image, tmpfs=False)

    assert await read_file(docker, with_shell, "/run/secrets/absent") is None
    assert await read_file(docker, without_shell, "/run/secrets/absent") is None
    assert await read_file(docker, without_shell, "/srv") is None  # a directory
    with pytest.raises(ValueError, match="absolute"):
        await read_file(docker, with_shell, "etc/passwd")


# Without a shell: the archive API


async def test_writes_rotates_and_blanks_a_secret_file_in_an_image_without_a_shell(
    docker: DockerAdapter, mcp_image: str, start: Start
) -> None:
    container_id = await start(mcp_image, tmpfs=False)
    before = await start_marks(docker, container_id)
    rotated = new_secret()

    await docker.write_secret_file(container_id, "api.key", new_secret())
    await docker.write_secret_file(container_id, "api.key", rotated)

    assert await read_file(docker, container_id, "/run/secrets/api.key") == rotated
    stat = await in_container(container_id, PYTHON, "-c", STAT, "/run/secrets/api.key")
    assert stat == "0o400 0\n"
    assert await in_container(container_id, PYTHON, "-c", STAT, "/run/secrets") == "0o700 0\n"
    assert await docker.remove_secret_file(container_id, "api.key") is False
    assert await read_file(docker, container_id, "/run/secrets/api.key") == b""
    assert await in_container(container_id, PYTHON, "-c", STAT, "/run/secrets/api.key") == (
        "0o0 0\n"
    )
    assert await start_marks(docker, container_id) == before


async def test_an_image_without_a_shell_is_created_without_the_tmpfs_it_could_not_use(
    docker: DockerAdapter, mcp_image: str, start: Start
) -> None:
    container_id = await start(mcp_image, tmpfs=True)
    secret = new_secret()

    await docker.write_secret_file(container_id, "api.key", secret)

    inspected = json.dumps(await inspect_raw("container", container_id))
    assert "/run/secrets" not in inspected  # no tmpfs: the archive API could not reach it
    assert await read_file(docker, container_id, "/run/secrets/api.key") == secret


async def test_replicas_of_a_shell_less_image_created_at_once_all_go_without_the_tmpfs(
    docker: DockerAdapter, mcp_image: str, start: Start
) -> None:
    """The first creates of an image race to learn whether it has a shell: every one of them
    must end without the tmpfs, not only the one that looked."""
    made = await asyncio.gather(*(start(mcp_image, tmpfs=True) for _ in range(4)))

    for container_id in made:
        assert "/run/secrets" not in json.dumps(await inspect_raw("container", container_id))
        await docker.write_secret_file(container_id, "api.key", new_secret())


PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1001:1002::/home/app:/sbin/nologin\n"


@pytest.mark.parametrize(
    ("user", "ids"),
    [
        ("", (0, 0)),
        ("root", (0, 0)),
        ("1000", (1000, 0)),
        ("1000:1000", (1000, 1000)),
        ("app", (1001, 1002)),
        ("app:7", (1001, 7)),
        ("nobody", None),
    ],
)
def test_finds_the_owner_of_archived_secret_files_from_the_containers_user(
    user: str, ids: tuple[int, int] | None
) -> None:
    assert docker_files.user_ids(user, PASSWD) == ids
