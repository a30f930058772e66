"""The `docker` command line, for tests that act on the engine from outside the adapter or
read what the adapter made without going through it; and the network sweep."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from service.docker.adapter import DockerAdapter
from tests.support.docker import TEST_RUN_ID, TEST_RUN_LABEL

ABSENT = 3  # READ_SCRIPT's exit code when there is no regular file at the path
READ_SCRIPT = f'[ -f "$1" ] || exit {ABSENT}; exec cat "$1"'


async def docker_cli(*args: str) -> str:
    """Run `docker *args`; return its standard output, or fail with its error output."""
    return (await _checked(*args)).decode()


async def _run(
    *args: str, stdin: bytes | None = None, environ: Mapping[str, str] | None = None
) -> tuple[int, bytes, str]:
    """Run `docker *args`; return its exit code, its output and its error output."""
    process = await asyncio.create_subprocess_exec(
        "docker",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    output, error = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, output, error.decode(errors="replace")


async def _checked(
    *args: str, stdin: bytes | None = None, environ: Mapping[str, str] | None = None
) -> bytes:
    code, output, error = await _run(*args, stdin=stdin, environ=environ)
    if code != 0:
        raise AssertionError(f"docker {' '.join(args)}: {error}")
    return output


async def container_log(container_id: str) -> tuple[str, str]:
    """`docker logs`: what the container wrote to its standard output, and to its standard error."""
    code, output, error = await _run("logs", container_id)
    if code != 0:
        raise AssertionError(f"docker logs {container_id}: {error}")
    return output.decode(errors="replace"), error


async def inspect_raw(kind: str, name_or_id: str) -> dict[str, Any]:
    """`docker <kind> inspect`'s JSON: what the engine holds, not the adapter's reading of it."""
    found: list[dict[str, Any]] = json.loads(await docker_cli(kind, "inspect", name_or_id))
    return found[0]


async def build_image(tag: str, context_tar: bytes) -> None:
    """Build `tag` from a tar (plain or gzipped) holding a Dockerfile.

    The engine pulls a FROM image it lacks: build FROM scratch or from local images.
    """
    # The engine's own builder, which its build API (the adapter's client) uses too.
    classic = {**os.environ, "DOCKER_BUILDKIT": "0"}
    await _checked("build", "--rm", "--tag", tag, "-", stdin=context_tar, environ=classic)


async def stop_container(docker: DockerAdapter, container_id: str, timeout_s: int = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout_s` seconds; a stopped container is fine, an absent
    one the adapter's `DockerNotFoundError`."""
    await docker.inspect_container(container_id)
    await _checked("stop", "-t", str(timeout_s), container_id)


async def read_file(docker: DockerAdapter, container_id: str, path: str) -> bytes | None:
    """The regular file at the absolute `path` as the container's user sees it, tmpfs mounts
    included; None when there is none. Without a shell, through `docker cp`, which sees the
    image and the writable layer but no tmpfs. An absent container is the adapter's
    `DockerNotFoundError`."""
    if not PurePosixPath(path).is_absolute():
        raise ValueError("the path of a file in a container must be absolute")
    await docker.inspect_container(container_id)
    if (await _run("cp", f"{container_id}:/bin/sh", "-"))[0] != 0:
        return await _copied(container_id, path)
    code, output, error = await _run(
        "exec", container_id, "sh", "-c", READ_SCRIPT, "dtma-read", path
    )
    if code == ABSENT:
        return None
    if code != 0:
        raise AssertionError(f"cannot read {path} in container {container_id[:12]}: {error}")
    return output


async def _copied(container_id: str, path: str) -> bytes | None:
    code, archive, _error = await _run("cp", f"{container_id}:{path}", "-")
    if code != 0:
        return None  # the engine found nothing at `path`
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = next(iter(tar.getmembers()), None)
        if member is None or not member.isfile():
            return None
        extracted = tar.extractfile(member)
        return extracted.read() if extracted is not None else None


async def sweep_test_networks(docker: DockerAdapter) -> None:
    """Remove the managed networks this test session labelled (their containers go first)."""
    for name, labels in await docker.list_managed_networks():
        if labels.get(TEST_RUN_LABEL) == TEST_RUN_ID:
            await docker.remove_network(name)
