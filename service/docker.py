"""The Docker adapter: the only module that imports aiodocker (with `docker_events`).

Every aiodocker or connection error becomes a service error in `_translated`, and nowhere else.
Callers see plain values (`service.docker_objects`, `service.docker_events`), never aiodocker's.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import aclosing, contextmanager, suppress
from dataclasses import replace
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Self

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer

from service import docker_files, errors
from service.docker_events import DockerEvent, stream_events
from service.docker_objects import (
    MANAGED_LABEL,
    MANAGED_LABELS,
    ContainerInfo,
    ContainerSpec,
    container_config,
    container_info,
    hardened_host_config,
    is_managed,
    managed,
    published_port,
)

__all__ = [
    "MANAGED_LABEL",
    "ContainerInfo",
    "ContainerSpec",
    "DockerAdapter",
    "DockerConflictError",
    "DockerEvent",
    "DockerNotFoundError",
    "DockerOperationError",
    "DockerUnavailableError",
    "hardened_host_config",
]

BUILD_LOG_TAIL_LINES = 20
INSPECT_CONCURRENCY = 8
SCRIPT_TIMEOUT_S = 30


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
    except (
        aiohttp.ClientConnectionError,
        aiohttp.ClientPayloadError,  # a stream cut short
        FileNotFoundError,
        ConnectionError,
    ) as exc:
        raise DockerUnavailableError(f"cannot {action}: the Docker engine is unreachable") from exc


def _service_error(
    exc: aiodocker.DockerError, action: str, missing: str | None, log_tail: Iterable[str]
) -> errors.ServiceError:
    if exc.status == 900:
        return DockerUnavailableError(f"cannot {action}: the Docker engine is unreachable")
    # Docker answers a name no image can have ("I4qI", "a:b:c") with 400 "no such image: ...:
    # invalid reference format": as absent as any other missing image.
    if exc.status == 404 or (exc.status == 400 and "invalid reference format" in exc.message):
        return DockerNotFoundError(
            f"{missing} not found" if missing else f"cannot {action}: {exc.message}"
        )
    if exc.status in (403, 409):  # 403: not in this state (a network in use, a built-in one)
        return DockerConflictError(f"cannot {action}: {exc.message}")
    tail = "".join(log_tail).rstrip()
    return DockerOperationError(f"cannot {action}: {exc.message}" + (f"\n{tail}" if tail else ""))


def _label_filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    if not labels:
        raise ValueError("refusing to match containers without any label")
    return {"label": [f"{key}={value}" for key, value in labels.items()]}


class DockerAdapter:
    """A Docker engine client; it connects on first use and `close()` releases it."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._client: aiodocker.Docker | None = None
        self._shells: dict[str, bool] = {}  # image -> whether it has /bin/sh

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

    # Images

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

    # Containers

    async def create_container(self, spec: ContainerSpec) -> str:
        """Create (not start) a hardened container for `spec`, labelled managed; return its id.

        Nothing is pulled: an absent image is a `DockerNotFoundError` naming it. A name in use
        is a `DockerConflictError`. An absent network shows only when the container starts.
        """
        action = f"create container {spec.name} from image {spec.image}"
        if spec.secrets_tmpfs and self._shells.get(spec.image) is False:
            spec = replace(spec, secrets_tmpfs=False)
        with _translated(action, missing=f"image {spec.image}"):
            container = await self._docker().containers.create(
                container_config(spec), name=spec.name
            )
        if spec.secrets_tmpfs and spec.image not in self._shells:
            # The archive API, the only way into an image without a shell, cannot reach a
            # tmpfs: look (once per image) and make such a container again without one.
            self._shells[spec.image] = await self._has_shell(container)
            if not self._shells[spec.image]:
                await self.remove_container(container.id)
                return await self.create_container(replace(spec, secrets_tmpfs=False))
        return container.id

    async def _shell_in(self, container: DockerContainer) -> bool:
        """Whether the container's image has /bin/sh, looked up once per image. An exec of a
        shell that is not there is never tried: under load Docker can leave its attached stream
        open, and the exec then hangs until the script timeout."""
        image = (await container.show())["Config"]["Image"]
        if image not in self._shells:
            self._shells[image] = await self._has_shell(container)
        return self._shells[image]

    async def _has_shell(self, container: DockerContainer) -> bool:
        with _translated(f"look for /bin/sh in container {container.id[:12]}"):
            try:
                await container.get_archive("/bin/sh")
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    async def start_container(self, container_id: str) -> int | None:
        """Start a container; return the loopback port its published port got.

        None when it publishes no port, is on an internal network (which publishes none), or
        stopped again before its port could be read (it may die at once: an OOM kill).
        """
        with _translated(f"start container {container_id[:12]}"):
            await self._docker().containers.container(container_id).start()
            details = await self._docker().containers.container(container_id).show()
        return published_port(details)

    async def stop_container(self, container_id: str, timeout_s: int = 10) -> None:
        """SIGTERM, then SIGKILL after `timeout_s` seconds; a stopped container is fine."""
        with _translated(f"stop container {container_id[:12]}"):
            await self._docker().containers.container(container_id).stop(t=timeout_s)

    async def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        """Send `signal`; a container that is not running is a `DockerConflictError`."""
        with _translated(f"kill container {container_id[:12]}"):
            await self._docker().containers.container(container_id).kill(signal=signal)

    async def remove_container(self, container_id: str) -> None:
        """Force-remove a container, running or not; one that is gone already, or already
        being removed, is fine."""
        try:
            await self._remove(container_id)
        except DockerNotFoundError:
            return
        except DockerConflictError as exc:
            if "already in progress" not in exc.message:
                raise

    async def inspect_container(self, container_id: str) -> ContainerInfo:
        """The container's state; an absent one is a `DockerNotFoundError`."""
        short = container_id[:12]
        with _translated(f"inspect container {short}", missing=f"container {short}"):
            details = await self._docker().containers.container(container_id).show()
        return container_info(details)

    async def inspect_raw(self, container_id: str) -> str:
        """Everything `docker inspect` shows of the container, as JSON text (for audits and
        tests that must find no secret there)."""
        short = container_id[:12]
        with _translated(f"inspect container {short}", missing=f"container {short}"):
            details = await self._docker().containers.container(container_id).show()
        return json.dumps(details)

    async def list_managed(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """Every container labelled `dtma.managed=true` (and all of `labels`), running or not,
        oldest first.

        One list call, then an inspect of each (concurrently): only the inspect carries exit
        codes, OOM kills and start times. One removed in between is left out.
        """
        ids = await self.list_container_ids({**(labels or {}), **MANAGED_LABELS})
        limit = asyncio.Semaphore(INSPECT_CONCURRENCY)

        async def inspect(container_id: str) -> ContainerInfo | None:
            async with limit:
                with suppress(DockerNotFoundError):
                    return await self.inspect_container(container_id)
                return None

        found = await asyncio.gather(*(inspect(container_id) for container_id in reversed(ids)))
        return [info for info in found if info is not None]

    async def list_container_ids(self, labels: Mapping[str, str]) -> list[str]:
        """Ids of every container, running or not, carrying all of `labels`, newest first."""
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
        short = container_id[:12]
        with _translated(f"remove container {short}", missing=f"container {short}"):
            await self._docker().containers.container(container_id).delete(force=True)

    # Containers, start to finish

    async def run_container_to_completion(
        self, spec: ContainerSpec, timeout_s: float = 60
    ) -> tuple[int, str]:
        """Run `spec` until it exits; return its exit code and its output (stdout and stderr).

        The container is removed whatever happens. Raises `errors.TimedOutError` after
        `timeout_s` seconds. The image must exist already: nothing is pulled.
        """
        container_id = await self.create_container(spec)
        container = self._docker().containers.container(container_id)
        try:
            with _translated(f"run container {spec.name} from image {spec.image}"):
                await container.start()
                exit_code = await _wait(container, spec.image, timeout_s)
                output = await container.log(stdout=True, stderr=True)
        finally:
            await self.remove_container(container_id)
        return exit_code, "".join(output)

    async def run_to_completion(
        self, image: str, command: list[str], labels: dict[str, str], timeout_s: float = 60
    ) -> tuple[int, str]:
        """`run_container_to_completion` of a hardened container named by Docker's rules."""
        spec = ContainerSpec(
            name=f"dtma-run-{secrets.token_hex(6)}", image=image, labels=labels, command=command
        )
        return await self.run_container_to_completion(spec, timeout_s)

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

        A container that does not start, or stops before its port is known, is removed.
        """
        spec = ContainerSpec(
            name=name,
            image=image,
            labels=labels,
            env=env or {},
            container_port=container_port,
            memory_mb=memory_mb,
        )
        container_id = await self.create_container(spec)
        try:
            port = await self.start_container(container_id)
            if port is None:
                info = await self.inspect_container(container_id)
                raise DockerOperationError(
                    f"container {name} has no host port for {container_port}/tcp "
                    f"(status {info.state}, exit code {info.exit_code})"
                )
        except BaseException:
            with suppress(errors.ServiceError):
                await self._remove(container_id)
            raise
        return container_id, port

    # Files in running containers

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

    async def read_file(self, container_id: str, path: str) -> bytes | None:
        """The regular file at the absolute `path` as the container's user sees it, tmpfs
        mounts included; None when there is none. Without a shell, through the archive API,
        which sees the image and the writable layer but no tmpfs."""
        if not PurePosixPath(path).is_absolute():
            raise ValueError("the path of a file in a container must be absolute")
        action = f"read {path} in container {container_id[:12]}"
        result = await self._run_script(action, container_id, docker_files.READ_SCRIPT, path)
        if result.shell_missing:
            return await self._read_archived(action, container_id, path)
        if result.started and result.exit_code == docker_files.ABSENT:
            return None
        return _checked(result, action).stdout

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
        with _translated(f"write {path} in container {short}", missing=f"container {short}"):
            await docker_files.put_file(container, target, content, mode=mode)

    async def _run_script(
        self, action: str, container_id: str, script: str, argument: str, stdin: bytes | None = None
    ) -> docker_files.ScriptResult:
        container = self._docker().containers.container(container_id)
        try:
            with _translated(action, missing=f"container {container_id[:12]}"):
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
        with _translated(action, missing=f"container {container_id[:12]}"):
            details = await container.show()
            if docker_files.archive_unreachable(details):
                raise DockerOperationError(
                    f"cannot {action}: its image has no shell and Docker's archive API cannot "
                    f"reach the tmpfs on /run/secrets; create it without one"
                )
            if (ids := await docker_files.container_owner(container, details)) is None:
                raise DockerOperationError(f"cannot {action}: its user is not in /etc/passwd")
            await docker_files.put_secret(container, name, content, mode=mode, owner=ids)

    async def _read_archived(self, action: str, container_id: str, path: str) -> bytes | None:
        container = self._docker().containers.container(container_id)
        try:
            with _translated(action):
                return await docker_files.read_archived(container, path)
        except DockerNotFoundError:
            await self.inspect_container(container_id)  # raises if the container is gone
            return None

    # Networks

    async def ensure_network(
        self, name: str, labels: Mapping[str, str], internal: bool = False
    ) -> str:
        """The id of the managed bridge network `name`, created (labelled managed) if absent.

        A network of that name that is not managed, or differs in `internal`, is a
        `DockerConflictError` and is left alone.
        """
        for _attempt in range(2):  # a concurrent create of the same name wins the race once
            if (existing := await self._find_network(name)) is not None:
                return _checked_network(existing, name, internal)
            config = {
                "Name": name,
                "Driver": "bridge",
                "Internal": internal,
                "Labels": managed(labels),
                "CheckDuplicate": True,
            }
            with suppress(DockerConflictError), _translated(f"create network {name}"):
                network = await self._docker().networks.create(config)
                return str(network.id)
        raise DockerConflictError(f"cannot create network {name}: created and removed meanwhile")

    async def remove_network(self, name: str) -> None:
        """Remove the managed network `name`; an absent one is fine.

        One that is not managed, or still has containers on it, is a `DockerConflictError`.
        """
        existing = await self._find_network(name)
        if existing is None:
            return
        if not is_managed(existing.get("Labels")):
            raise DockerConflictError(f"network {name} is not managed by DTMA: left alone")
        with suppress(DockerNotFoundError), _translated(f"remove network {name}"):
            network = await self._docker().networks.get(str(existing["Id"]))
            await network.delete()

    async def list_managed_networks(self) -> list[tuple[str, dict[str, str]]]:
        """The name and labels of every network labelled `dtma.managed=true`."""
        with _translated("list networks"):
            found = await self._docker().networks.list(filters=_label_filters(MANAGED_LABELS))
        return [(str(network["Name"]), dict(network.get("Labels") or {})) for network in found]

    async def _find_network(self, name: str) -> dict[str, Any] | None:
        """The network called exactly `name` (Docker's name filter also matches parts)."""
        with _translated(f"look for network {name}"):
            found = await self._docker().networks.list(filters={"name": name})
        return next((network for network in found if network.get("Name") == name), None)

    # Events

    async def events(self, since_nano: int | None = None) -> AsyncIterator[DockerEvent]:
        """Managed containers' events, from `since_nano` (inclusive) or from now on.

        Docker replays from `since` what its in-memory buffer (the last 256 events, emptied by a
        daemon restart) still holds, then follows live. A lost connection, or an engine that
        cannot be reached, raises `DockerUnavailableError`: reconnect with the last `time_nano`
        seen and drop the events at that very nanosecond already handled.
        """
        with _translated("follow the Docker engine's events"):
            async with aclosing(stream_events(self._docker(), since_nano)) as stream:
                async for event in stream:
                    yield event


def _checked_network(network: Mapping[str, Any], name: str, internal: bool) -> str:
    if not is_managed(network.get("Labels")):
        raise DockerConflictError(f"network {name} exists and is not managed by DTMA")
    if bool(network.get("Internal")) != internal:
        raise DockerConflictError(
            f"network {name} exists with internal={bool(network.get('Internal'))}; "
            f"remove it to change that"
        )
    return str(network["Id"])


def _checked(result: docker_files.ScriptResult, action: str) -> docker_files.ScriptResult:
    if (failure := result.failure()) is not None:
        raise DockerOperationError(f"cannot {action}: {failure}")
    return result


async def _wait(container: DockerContainer, image: str, timeout_s: float) -> int:
    try:
        async with asyncio.timeout(timeout_s):
            result = await container.wait()
    except TimeoutError as exc:
        raise errors.TimedOutError(
            f"container from image {image} did not exit within {timeout_s:g} s"
        ) from exc
    return int(result["StatusCode"])
