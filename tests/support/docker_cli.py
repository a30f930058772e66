"""The `docker` command line, for tests that act on the engine from outside the adapter or
read what the adapter made without going through it; and the network sweep."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from service.docker.adapter import DockerAdapter
from tests.support.docker import TEST_RUN_ID, TEST_RUN_LABEL


async def docker_cli(*args: str) -> str:
    """Run `docker *args`; return its standard output, or fail with its error output."""
    process = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    output, error = await process.communicate()
    if process.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {error.decode(errors='replace')}")
    return output.decode()


async def inspect_raw(kind: str, name_or_id: str) -> dict[str, Any]:
    """`docker <kind> inspect`'s JSON: what the engine holds, not the adapter's reading of it."""
    found: list[dict[str, Any]] = json.loads(await docker_cli(kind, "inspect", name_or_id))
    return found[0]


async def sweep_test_networks(docker: DockerAdapter) -> None:
    """Remove the managed networks this test session labelled (their containers go first)."""
    for name, labels in await docker.list_managed_networks():
        if labels.get(TEST_RUN_LABEL) == TEST_RUN_ID:
            await docker.remove_network(name)
