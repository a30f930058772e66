"""A DTMA image built FROM scratch, as the MCP test image is (no registry): the host's
interpreter and its libraries, the stdlib, the distributions `dtma` requires (from the venv
running the tests) and the project's own packages. The tag hashes what goes in."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from contextlib import suppress
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.docker.adapter import DockerAdapter
from tests.support import mcp_image
from tests.support.docker_cli import build_image

IMAGE_REPOSITORY = "dtma-test/dtma"
PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("eventstore", "projections", "service", "migrations")
IMAGE_SITE = "/usr/local/lib/dtma-site"
IMAGE_PROJECT = "/srv/dtma"
CONTAINER_PORT = 30000

DOCKERFILE = f"""\
FROM scratch
COPY rootfs/ /
ENV PYTHONHOME=/usr/local PYTHONPATH={IMAGE_PROJECT}:{IMAGE_SITE} PYTHONUNBUFFERED=1 \\
    PYTHONUTF8=1 DTMA_HOST=0.0.0.0 DTMA_DATABASE_URL=/data/dtma.db DTMA_KEY_FILE=/data/dtma.key
WORKDIR /data
EXPOSE {CONTAINER_PORT}/tcp
ENTRYPOINT ["{mcp_image.IMAGE_PYTHON}", "-c", "import sys; from service.cli.main import main; \
sys.exit(main())"]
CMD ["serve"]
"""


async def ensure_dtma_image(docker: DockerAdapter) -> str:
    """Build `dtma-test/dtma:<hash>` unless it exists; return the tag. It serves on
    `CONTAINER_PORT`, keeps its database and key in /data, and runs as root (the socket)."""
    roots = _distribution_roots()
    tag = f"{IMAGE_REPOSITORY}:{_content_hash(roots)}"
    if not await docker.image_exists(tag):
        await build_image(tag, await _build_context(roots))
    return tag


def _required(name: str, extras: set[str], seen: dict[str, metadata.Distribution]) -> None:
    """`name` and every distribution it requires with `extras`, as markers here decide."""
    key = canonicalize_name(name)
    if key in seen:
        return
    distribution = metadata.distribution(name)
    seen[key] = distribution
    for text in distribution.requires or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker and not any(marker.evaluate({"extra": e}) for e in extras or {""}):
            continue
        with suppress(metadata.PackageNotFoundError):  # not installed: not needed here
            _required(requirement.name, set(requirement.extras), seen)


def _distribution_roots() -> list[Path]:
    """The top-level files and directories of every distribution `dtma` requires, itself not
    included (its packages come from the project tree)."""
    seen: dict[str, metadata.Distribution] = {}
    _required("dtma", set(), seen)
    roots: set[Path] = set()
    for key, distribution in seen.items():
        if key == "dtma":
            continue
        for file in distribution.files or []:
            parts = PurePosixPath(str(file)).parts
            if parts and parts[0] not in ("..", "__pycache__") and not parts[0].endswith(".pth"):
                roots.add(Path(str(distribution.locate_file(parts[0]))))
    return sorted(roots)


def _content_hash(roots: list[Path]) -> str:
    digest = hashlib.sha256()
    for root in roots:
        digest.update(root.name.encode() + b"\0")
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(PROJECT)).encode() + b"\0")
                digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(Path(mcp_image.__file__).read_bytes())
    return digest.hexdigest()[:16]


async def _build_context(roots: list[Path]) -> bytes:
    compiled = [path for root in roots for path in _shared_objects(root)]
    dynload = [
        path
        for path in mcp_image.DYNLOAD.glob("*.so")
        if mcp_image._keep_in_dynload(PurePosixPath(path.name))
    ]
    libraries = await mcp_image._shared_libraries(
        [mcp_image.INTERPRETER, *dynload, *compiled],
        inside=[mcp_image.STDLIB, mcp_image.DYNLOAD, *(r for r in roots if r.is_dir())],
    )
    return await asyncio.to_thread(_context_tar, roots, sorted(libraries))


def _shared_objects(root: Path) -> list[Path]:
    if root.is_file():
        return [root] if root.suffix == ".so" else []
    return list(root.rglob("*.so"))


def _context_tar(roots: list[Path], libraries: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
        mcp_image._add_bytes(tar, "Dockerfile", DOCKERFILE.encode(), mode=0o644)
        mcp_image._add_file(tar, mcp_image.INTERPRETER, mcp_image.IMAGE_PYTHON)
        for library in libraries:
            mcp_image._add_file(tar, library, str(library))
        mcp_image._add_tree(
            tar, mcp_image.STDLIB, mcp_image.IMAGE_STDLIB, mcp_image._keep_in_stdlib
        )
        mcp_image._add_tree(
            tar,
            mcp_image.DYNLOAD,
            f"{mcp_image.IMAGE_STDLIB}/lib-dynload",
            mcp_image._keep_in_dynload,
        )
        for root in roots:
            mcp_image._add_tree(tar, root, f"{IMAGE_SITE}/{root.name}", _everything)
        for package in PACKAGES:
            mcp_image._add_tree(tar, PROJECT / package, f"{IMAGE_PROJECT}/{package}", _no_cache)
        for directory, mode in (("tmp", 0o1777), ("data", 0o700)):
            info = tarfile.TarInfo(f"rootfs/{directory}")
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
    return buffer.getvalue()


def _everything(relative: PurePosixPath) -> bool:
    return True


def _no_cache(relative: PurePosixPath) -> bool:
    return "__pycache__" not in relative.parts
