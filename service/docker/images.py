"""Images by reference: parsed as Docker parses them, found only as a reference (never as an
image-id prefix, which `docker image inspect` also matches), and pulled with a progress feed."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiodocker

DEFAULT_REGISTRY = "docker.io"
IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
Progress = Callable[[int, int | None], None]  # bytes done, bytes total (None: not said yet)


@dataclass(frozen=True, slots=True)
class Reference:
    """`registry/repository[:tag][@digest]`, the registry and tag made explicit."""

    registry: str
    repository: str  # without the registry: `library/ubuntu`, `team/server`
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def familiar(self) -> str:
        """The repository as Docker lists it: no `docker.io/`, no `library/`."""
        if self.registry != DEFAULT_REGISTRY:
            return self.name
        return self.repository.removeprefix("library/")

    def pinned(self, digest: str) -> str:
        return f"{self.name}@{digest}"


def parse(reference: str) -> Reference:
    """A reference as Docker reads it; `ValueError` for one that cannot be an image name."""
    rest, _, digest = reference.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DEFAULT_REGISTRY, rest
    name, _, tag = path.partition(":")  # past the registry, only a tag has a colon
    if not name or name != name.lower() or IMAGE_ID.match(reference):
        raise ValueError(f"{reference!r} is not an image reference")
    if registry == DEFAULT_REGISTRY and "/" not in name:
        name = f"library/{name}"
    return Reference(registry, name, tag or (None if digest else "latest"), digest or None)


def matches(image: Mapping[str, Any], reference: str) -> bool:
    """Whether an inspected image is the one `reference` names: an image id given whole, or a
    tag or digest the image carries. A prefix of its id is not a reference."""
    if IMAGE_ID.match(reference):
        return image.get("Id") == reference
    try:
        wanted = parse(reference)
    except ValueError:
        return False
    carried = [*(image.get("RepoTags") or ()), *(image.get("RepoDigests") or ())]
    return any(_same(wanted, name) for name in carried)


def _same(wanted: Reference, name: str) -> bool:
    try:
        found = parse(name)
    except ValueError:
        return False
    if found.name != wanted.name:
        return False
    if wanted.digest is not None:
        return found.digest == wanted.digest
    return found.digest is None and found.tag == wanted.tag


def digest_of(image: Mapping[str, Any], reference: str) -> tuple[str, str]:
    """The image's digest in `reference`'s repository and the reference that names exactly
    it; an image no registry gave (built here) has its id for both."""
    try:
        wanted = parse(reference)
    except ValueError:
        return str(image["Id"]), str(image["Id"])
    for name in image.get("RepoDigests") or ():
        found = parse(name)
        if found.name == wanted.name and found.digest:
            return found.digest, wanted.pinned(found.digest)
    return str(image["Id"]), str(image["Id"])


async def pull(
    docker: aiodocker.Docker,
    reference: str,
    auth: Mapping[str, str] | None,
    progress: Progress,
) -> None:
    """Pull `reference`, feeding `progress` the bytes of its layers as the engine reports
    them. The credentials go only into the request's X-Registry-Auth header."""
    ref = parse(reference)
    whole = ref.name + (f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")
    layers: dict[str, tuple[int, int | None]] = {}
    stream = docker.images.pull(whole, auth=dict(auth) if auth else None, stream=True)
    async for update in stream:  # aiodocker raises an error the stream reports
        detail = update.get("progressDetail") or {}
        layer = update.get("id")
        if layer and update.get("status") == "Downloading" and "current" in detail:
            layers[layer] = (int(detail["current"]), detail.get("total"))
            progress(*_sum(layers))


def _sum(layers: Mapping[str, tuple[int, int | None]]) -> tuple[int, int | None]:
    done = sum(current for current, _ in layers.values())
    totals = [total for _, total in layers.values()]
    return done, None if None in totals else sum(t for t in totals if t is not None)
