"""Files in containers, for the Docker adapter: secrets on /run/secrets written and removed by
the container's own shell as its user, or through Docker's archive API in images without one;
plain files (configuration) through the archive API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

import aiodocker
from aiodocker.containers import DockerContainer

from service import errors
from service.docker import files as docker_files
from service.docker.errors import DockerOperationError, translated

SCRIPT_TIMEOUT_S = 30
REMEMBERED_CONTAINERS = 4096  # container -> image entries kept (ids are never reused)


class ContainerFiles:
    """The adapter's file operations, on the client `docker` returns (the adapter's, made on
    first use); it also remembers which images have a shell."""

    def __init__(self, docker: Callable[[], aiodocker.Docker]) -> None:
        self._docker = docker
        self._shells: dict[str, bool] = {}  # image -> whether it has /bin/sh
        self._images: dict[str, str] = {}  # container id -> its image, oldest first

    def known_shell(self, image: str) -> bool | None:
        """Whether `image` has /bin/sh, if that has been learnt already."""
        return self._shells.get(image)

    async def image_has_shell(self, container_id: str, image: str) -> bool:
        """Whether `image` has /bin/sh, looked for (once per image) in its container
        `container_id`."""
        if (has_shell := self._shells.get(image)) is None:
            container = self._docker().containers.container(container_id)
            has_shell = self._shells[image] = await self._has_shell(container)
        return has_shell

    async def _shell_in(self, container: DockerContainer) -> bool:
        """Whether the container's image has /bin/sh, looked up once per image (and a
        container's image once per container). An exec of a shell that is not there is never
        tried: under load Docker can leave its attached stream open, and the exec then hangs
        until the script timeout."""
        image = self._images.get(container.id)
        if image is None:
            image = (await container.show())["Config"]["Image"]
            if len(self._images) >= REMEMBERED_CONTAINERS:
                del self._images[next(iter(self._images))]
            self._images[container.id] = image
        if image not in self._shells:
            self._shells[image] = await self._has_shell(container)
        return self._shells[image]

    async def _has_shell(self, container: DockerContainer) -> bool:
        with translated(f"look for /bin/sh in container {container.id[:12]}"):
            try:
                await container.get_archive("/bin/sh")
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    async def write_secret_file(self, container_id: str, name: str, content: bytes) -> None:
        """Put `content` at /run/secrets/<name> in the running container, mode 0400, owned by its
        user, replacing an older version whole; the container is not restarted.

        The container's shell, run as its user, reads the bytes from its stdin (on the tmpfs of
        `ContainerSpec.secrets_tmpfs` if it has one). An image without a shell gets the file
        through Docker's archive API, in its writable layer; the archive API cannot reach a
        tmpfs, so such a container with a secrets tmpfs is a `DockerOperationError`.

        Raises:
            ValueError: `name` is not a plain file name (Docker is not asked).
        """
        docker_files.check_secret_name(name)
        action = f"write secret file {name} in container {container_id[:12]}"
        script, stdin = docker_files.WRITE_SCRIPT, docker_files.framed(content)
        result = await self._run_script(action, container_id, script, name, stdin)
        if result.shell_missing:
            await self._put_secret(action, container_id, name, content, mode=0o400)
        else:
            _checked(result, action)

    async def remove_secret_file(self, container_id: str, name: str) -> bool:
        """Delete /run/secrets/<name> from the running container; True once it is gone (or was
        never there). Without a shell the archive API can only overwrite it: with an empty file
        of mode 0000, and the answer is False."""
        docker_files.check_secret_name(name)
        action = f"remove secret file {name} from container {container_id[:12]}"
        result = await self._run_script(action, container_id, docker_files.REMOVE_SCRIPT, name)
        if not result.shell_missing:
            _checked(result, action)
            return True
        await self._put_secret(action, container_id, name, b"", mode=0)
        return False

    async def write_file(
        self, container_id: str, path: str, content: bytes, mode: int = 0o644
    ) -> None:
        """Put `content` at the absolute `path` in the container, owned by root, through Docker's
        archive API: any image (no shell needed), a container that has not started yet too.
        Missing directories are made (0755). Not for secrets: they go through
        `write_secret_file`."""
        target = PurePosixPath(path)
        if not target.is_absolute() or target.name in ("", ".", ".."):
            raise ValueError("the path of a file in a container must be absolute")
        container = self._docker().containers.container(container_id)
        short = container_id[:12]
        with translated(f"write {path} in container {short}", missing=f"container {short}"):
            await docker_files.put_file(container, target, content, mode=mode)

    async def write_config(self, container_id: str, configuration: Mapping[str, Any]) -> None:
        """Put a server's `configuration` at CONFIG_PATH in the container (0644, root's)."""
        content = docker_files.rendered_config(configuration)
        await self.write_file(container_id, docker_files.CONFIG_PATH, content)

    async def _run_script(
        self, action: str, container_id: str, script: str, argument: str, stdin: bytes | None = None
    ) -> docker_files.ScriptResult:
        container = self._docker().containers.container(container_id)
        try:
            with translated(action, missing=f"container {container_id[:12]}"):
                async with asyncio.timeout(SCRIPT_TIMEOUT_S):
                    if not await self._shell_in(container):
                        return docker_files.NO_SHELL
                    return await docker_files.run_script(container, script, argument, stdin)
        except TimeoutError:
            raise errors.TimedOutError(
                f"cannot {action}: not done within {SCRIPT_TIMEOUT_S} s"
            ) from None

    async def _put_secret(
        self, action: str, container_id: str, name: str, content: bytes, *, mode: int
    ) -> None:
        container = self._docker().containers.container(container_id)
        with translated(action, missing=f"container {container_id[:12]}"):
            details = await container.show()
            if docker_files.archive_unreachable(details):
                raise DockerOperationError(
                    f"cannot {action}: its image has no shell and Docker's archive API cannot "
                    f"reach the tmpfs on /run/secrets; create it without one"
                )
            if (ids := await docker_files.container_owner(container, details)) is None:
                raise DockerOperationError(f"cannot {action}: its user is not in /etc/passwd")
            await docker_files.put_secret(container, name, content, mode=mode, owner=ids)


def _checked(result: docker_files.ScriptResult, action: str) -> docker_files.ScriptResult:
    if (failure := result.failure()) is not None:
        raise DockerOperationError(f"cannot {action}: {failure}")
    return result
