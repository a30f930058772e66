"""The Docker adapter: with the rest of `service.docker`, the only code that imports aiodocker.
Every aiodocker or connection error becomes a service error in `errors.translated`. Callers see
plain values (`objects`, `events`), never aiodocker's; files in containers are `container_files`'.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, suppress
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import aiodocker
from aiodocker.containers import DockerContainer

from service import errors
from service.docker import attach, attachments, container_files, images
from service.docker.errors import (
    DockerConflictError,
    DockerNotFoundError,
    DockerOperationError,
    DockerUnavailableError,
    ImagePullError,
    translated,
)
from service.docker.events import DockerEvent, stream_events
from service.docker.objects import (
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

INSPECT_CONCURRENCY = 8


def _label_filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    if not labels:
        raise ValueError("refusing to match containers without any label")
    return {"label": [f"{key}={value}" for key, value in labels.items()]}


class DockerAdapter:
    """A Docker engine client; it connects on first use and `close()` releases it."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._client: aiodocker.Docker | None = None
        self._files = container_files.ContainerFiles(self._docker)
        self.attachments = attachments.Attachments(self._docker)

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

    # Images

    async def inspect_image(self, tag: str) -> dict[str, Any]:
        with translated(f"inspect image {tag}", missing=f"image {tag}"):
            image: dict[str, Any] = await self._docker().images.inspect(tag)
        return image

    async def find_image(self, reference: str) -> dict[str, Any] | None:
        """The image `reference` names on this host, or None. Docker's inspect also matches a
        prefix of an image's id: such a match is not the image the reference names."""
        try:
            image = await self.inspect_image(reference)
        except DockerNotFoundError:
            return None
        return image if images.matches(image, reference) else None

    async def image_exists(self, reference: str) -> bool:
        return await self.find_image(reference) is not None

    async def pull_image(
        self,
        reference: str,
        auth: Mapping[str, str] | None = None,
        progress: images.Progress = lambda _done, _total: None,
    ) -> dict[str, Any]:
        """Pull `reference` and return the image it now names; `auth` (username, password)
        reaches only the pull's X-Registry-Auth header. A refusal is an `ImagePullError`."""
        try:
            with translated(f"pull image {reference}", missing=f"image {reference}"):
                await images.pull(self._docker(), reference, auth, progress)
        except (DockerNotFoundError, DockerOperationError, DockerConflictError) as exc:
            raise ImagePullError(exc.message) from None
        except ValueError as exc:
            raise ImagePullError(f"cannot pull image {reference}: {exc}") from None
        if (image := await self.find_image(reference)) is None:
            raise ImagePullError(f"image {reference} pulled but not found on this host")
        return image

    # Containers

    async def create_container(self, spec: ContainerSpec) -> str:
        """Create (not start) a hardened container for `spec`, labelled managed; return its id.

        Nothing is pulled: an absent image is a `DockerNotFoundError` naming it. A name in use
        is a `DockerConflictError`. An absent network shows only when the container starts.
        """
        if spec.secrets_tmpfs and self._files.known_shell(spec.image) is False:
            spec = replace(spec, secrets_tmpfs=False)
        container_id = await self._create(spec)
        # The archive API, the only way into an image without a shell, cannot reach a tmpfs:
        # look (once per image) and make such a container again without one. The answer is
        # asked for again after the create: a concurrent create may have learnt it.
        if spec.secrets_tmpfs and not await self._files.image_has_shell(container_id, spec.image):
            await self.remove_container(container_id)
            container_id = await self._create(replace(spec, secrets_tmpfs=False))
        return container_id

    async def _create(self, spec: ContainerSpec) -> str:
        action = f"create container {spec.name} from image {spec.image}"
        with translated(action, missing=f"image {spec.image}", refused=True):
            container = await self._docker().containers.create(
                container_config(spec), name=spec.name
            )
        return str(container.id)

    async def start_container(self, container_id: str) -> int | None:
        """Start a container; return the loopback port its published port got.

        None when it publishes no port, is on an internal network (which publishes none), or
        stopped again before its port could be read (it may die at once: an OOM kill).
        """
        with translated(f"start container {container_id[:12]}"):
            await self._docker().containers.container(container_id).start()
            details = await self._docker().containers.container(container_id).show()
        return published_port(details)

    async def kill_container(self, container_id: str, signal: str = "SIGKILL") -> None:
        """Send `signal`; a container that is not running is a `DockerConflictError`."""
        with translated(f"kill container {container_id[:12]}"):
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
        with translated(f"inspect container {short}", missing=f"container {short}"):
            details = await self._docker().containers.container(container_id).show()
        return container_info(details)

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
        with translated("list containers"):
            found = await self._docker().containers.list(all=True, filters=_label_filters(labels))
        return [container.id for container in found]

    async def _remove(self, container_id: str) -> None:
        short = container_id[:12]
        with translated(f"remove container {short}", missing=f"container {short}"):
            await self._docker().containers.container(container_id).delete(force=True)

    async def attach_stdio(self, container_id: str) -> attach.StdioAttachment:
        """Attach to a running container's stdin and stdout (never its stderr)."""
        return await attach.StdioAttachment.open(self._docker(), container_id)

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
            with translated(f"run container {spec.name} from image {spec.image}"):
                await container.start()
                exit_code = await _wait(container, spec.image, timeout_s)
                output = await container.log(stdout=True, stderr=True)
        finally:
            await self.remove_container(container_id)
        return exit_code, "".join(output)

    # Files in containers

    async def write_secret_file(self, container_id: str, name: str, content: bytes) -> None:
        """See `ContainerFiles.write_secret_file`."""
        await self._files.write_secret_file(container_id, name, content)

    async def remove_secret_file(self, container_id: str, name: str) -> bool:
        """See `ContainerFiles.remove_secret_file`."""
        return await self._files.remove_secret_file(container_id, name)

    async def write_config(self, container_id: str, configuration: Mapping[str, Any]) -> None:
        """See `ContainerFiles.write_config`."""
        await self._files.write_config(container_id, configuration)

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
            with suppress(DockerConflictError), translated(f"create network {name}"):
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
        with suppress(DockerNotFoundError), translated(f"remove network {name}"):
            network = await self._docker().networks.get(str(existing["Id"]))
            await network.delete()

    async def list_managed_networks(self) -> list[tuple[str, dict[str, str]]]:
        """The name and labels of every network labelled `dtma.managed=true`."""
        with translated("list networks"):
            found = await self._docker().networks.list(filters=_label_filters(MANAGED_LABELS))
        return [(str(network["Name"]), dict(network.get("Labels") or {})) for network in found]

    async def _find_network(self, name: str) -> dict[str, Any] | None:
        """The network called exactly `name` (Docker's name filter also matches parts)."""
        with translated(f"look for network {name}"):
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
        with translated("follow the Docker engine's events"):
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


async def _wait(container: DockerContainer, image: str, timeout_s: float) -> int:
    try:
        async with asyncio.timeout(timeout_s):
            result = await container.wait()
    except TimeoutError as exc:
        raise errors.TimedOutError(
            f"container from image {image} did not exit within {timeout_s:g} s"
        ) from exc
    return int(result["StatusCode"])
