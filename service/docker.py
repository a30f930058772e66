"""The Docker adapter: the only module that imports aiodocker.

Every aiodocker or connection error becomes a service error in `_translated`, and nowhere else.
"""

from __future__ import annotations

import asyncio
import io
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any, Self

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer

from service import errors

BUILD_LOG_TAIL_LINES = 20
MIB = 1024 * 1024


class DockerUnavailableError(errors.UnavailableError):
    code = "docker_unavailable"


class DockerNotFoundError(errors.NotFoundError):
    code = "docker_not_found"


class DockerConflictError(errors.ConflictError):
    code = "docker_conflict"


class DockerOperationError(errors.ServiceError):
    status = 502
    code = "docker_error"


@contextmanager
def _translated(
    action: str, *, missing: str | None = None, log_tail: Iterable[str] = ()
) -> Iterator[None]:
    """Turn aiodocker's and aiohttp's errors during `action` into service errors.

    `missing` names what a 404 means ("image x:1"); `log_tail` is appended to other failures.
    """
    try:
        yield
    except aiodocker.DockerError as exc:
        raise _service_error(exc, action, missing, log_tail) from exc
    except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionError) as exc:
        raise DockerUnavailableError(f"cannot {action}: the Docker engine is unreachable") from exc


def _service_error(
    exc: aiodocker.DockerError, action: str, missing: str | None, log_tail: Iterable[str]
) -> errors.ServiceError:
    if exc.status == 900:
        return DockerUnavailableError(f"cannot {action}: the Docker engine is unreachable")
    if exc.status == 404:
        return DockerNotFoundError(
            f"{missing} not found" if missing else f"cannot {action}: not found"
        )
    if exc.status == 409:
        return DockerConflictError(f"cannot {action}: {exc.message}")
    tail = "".join(log_tail).rstrip()
    return DockerOperationError(f"cannot {action}: {exc.message}" + (f"\n{tail}" if tail else ""))


def hardened_host_config(*, pids_limit: int = 64) -> dict[str, Any]:
    """The HostConfig every container starts from: no privileges to gain, no restarts."""
    return {
        "SecurityOpt": ["no-new-privileges"],
        "CapDrop": ["ALL"],
        "PidsLimit": pids_limit,
        "RestartPolicy": {"Name": "no"},
    }


def _label_filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    if not labels:
        raise ValueError("refusing to match containers without any label")
    return {"label": [f"{key}={value}" for key, value in labels.items()]}


class DockerAdapter:
    """A Docker engine client; it connects on first use and `close()` releases it."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._client: aiodocker.Docker | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def _docker(self) -> aiodocker.Docker:
        if self._client is None:
            try:
                self._client = aiodocker.Docker(url=self._url)
            except (ValueError, AssertionError) as exc:  # aiodocker asserts it found a host
                raise DockerUnavailableError("no usable Docker engine address") from exc
        return self._client

    async def ping(self) -> None:
        """Raise `DockerUnavailableError` unless the engine answers."""
        await self.version()

    async def version(self) -> dict[str, Any]:
        with _translated("ask the Docker engine for its version"):
            version: dict[str, Any] = await self._docker().version()
        return version

    async def build_image(self, tag: str, context_tar: bytes) -> None:
        """Build `tag` from a tar (plain or gzipped) holding a Dockerfile.

        The engine pulls a FROM image it lacks: build FROM scratch or from local images.
        """
        log: deque[str] = deque(maxlen=BUILD_LOG_TAIL_LINES)
        build = self._docker().images.build(
            fileobj=io.BytesIO(context_tar), encoding="identity", tag=tag, stream=True, rm=True
        )
        with _translated(f"build image {tag}", log_tail=log):
            async for chunk in build:
                log.append(str(chunk.get("stream", "")))

    async def inspect_image(self, tag: str) -> dict[str, Any]:
        with _translated(f"inspect image {tag}", missing=f"image {tag}"):
            image: dict[str, Any] = await self._docker().images.inspect(tag)
        return image

    async def image_exists(self, tag: str) -> bool:
        try:
            await self.inspect_image(tag)
        except DockerNotFoundError:
            return False
        return True

    async def run_to_completion(
        self, image: str, command: list[str], labels: dict[str, str], timeout_s: float = 60
    ) -> tuple[int, str]:
        """Run a hardened container until it exits; return its exit code and its output.

        The container is removed whatever happens. Raises `errors.TimedOutError` after
        `timeout_s` seconds. The image must exist already: nothing is pulled.
        """
        config: dict[str, Any] = {
            "Image": image,
            "Cmd": command,
            "Labels": labels,
            "HostConfig": hardened_host_config(),
        }
        action = f"run a container from image {image}"
        with _translated(action, missing=f"image {image}"):
            container = await self._docker().containers.create(config)
        try:
            with _translated(action):
                await container.start()
                exit_code = await _wait(container, image, timeout_s)
                output = await container.log(stdout=True, stderr=True)
        finally:
            await self._remove(container.id)
        return exit_code, "".join(output)

    async def run_detached(
        self,
        *,
        name: str,
        image: str,
        labels: dict[str, str],
        env: dict[str, str] | None = None,
        container_port: int = 8000,
        memory_mb: int | None = None,
    ) -> tuple[str, int]:
        """Create and start a hardened container; return its id and its published host port.

        `container_port`/tcp is published on 127.0.0.1 at a free port Docker picks. `memory_mb`
        is a hard limit (no swap beyond it). The image must exist already: nothing is pulled.
        A container that does not start, or stops before its port is known, is removed.
        """
        port = f"{container_port}/tcp"
        host_config = hardened_host_config()
        host_config["PortBindings"] = {port: [{"HostIp": "127.0.0.1", "HostPort": ""}]}
        if memory_mb is not None:
            host_config["Memory"] = host_config["MemorySwap"] = memory_mb * MIB
        config: dict[str, Any] = {
            "Image": image,
            "Labels": labels,
            "Env": [f"{key}={value}" for key, value in (env or {}).items()],
            "ExposedPorts": {port: {}},
            "HostConfig": host_config,
        }
        action = f"run container {name} from image {image}"
        with _translated(action, missing=f"image {image}"):
            container = await self._docker().containers.create(config, name=name)
        try:
            with _translated(action):
                await container.start()
                details = await container.show()
            return container.id, _published_port(details, port, name)
        except BaseException:
            with suppress(errors.ServiceError):
                await self._remove(container.id)
            raise

    async def remove_container(self, container_id: str) -> None:
        """Force-remove a container, running or not; one that is gone already is fine."""
        with suppress(DockerNotFoundError):
            await self._remove(container_id)

    async def list_container_ids(self, labels: Mapping[str, str]) -> list[str]:
        """Ids of every container, running or not, carrying all of `labels`."""
        with _translated("list containers"):
            found = await self._docker().containers.list(all=True, filters=_label_filters(labels))
        return [container.id for container in found]

    async def remove_containers(self, labels: Mapping[str, str]) -> int:
        """Force-remove every container carrying all of `labels`; return how many went."""
        removed = 0
        for container_id in await self.list_container_ids(labels):
            try:
                await self._remove(container_id)
            except DockerNotFoundError:
                continue  # gone in the meantime: not ours to count
            removed += 1
        return removed

    async def _remove(self, container_id: str) -> None:
        with _translated(
            f"remove container {container_id[:12]}", missing=f"container {container_id[:12]}"
        ):
            await self._docker().containers.container(container_id).delete(force=True)


def _published_port(details: Mapping[str, Any], port: str, name: str) -> int:
    bindings = (details.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in bindings.get(port) or []:
        if binding.get("HostIp") == "127.0.0.1" and binding.get("HostPort"):
            return int(binding["HostPort"])
    state = details.get("State") or {}
    raise DockerOperationError(
        f"container {name} has no host port for {port} "
        f"(status {state.get('Status')}, exit code {state.get('ExitCode')})"
    )


async def _wait(container: DockerContainer, image: str, timeout_s: float) -> int:
    try:
        async with asyncio.timeout(timeout_s):
            result = await container.wait()
    except TimeoutError as exc:
        raise errors.TimedOutError(
            f"container from image {image} did not exit within {timeout_s:g} s"
        ) from exc
    return int(result["StatusCode"])
