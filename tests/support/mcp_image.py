"""The MCP server image the tests build FROM scratch (no registry): the host's interpreter, the
libraries `ldd` finds for it and its compiled modules, the stdlib, a `pip install --target` of the
official `mcp` SDK, and `mcp_server/server.py`. The tag hashes what goes in; existing is reused."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import platform
import re
import secrets
import shutil
import sys
import sysconfig
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from service.docker.adapter import DockerAdapter
from tests.support.docker_cli import build_image

SDK_VERSION = "2.3.0"  # the official SDK, PyPI `mcp`
IMAGE_REPOSITORY = "dtma-test/mcp-server"
SERVER_SOURCE = Path(__file__).parent / "mcp_server" / "server.py"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dtma-test"
CONTAINER_PORT = 8000

INTERPRETER = Path(sys.executable).resolve()  # through the venv's link to the real binary
STDLIB = Path(sysconfig.get_path("stdlib"))  # the base interpreter's, also from inside a venv
DYNLOAD = Path(sysconfig.get_config_var("DESTSHARED"))  # its compiled stdlib modules

PYTHON_XY = f"{sys.version_info.major}.{sys.version_info.minor}"
IMAGE_PYTHON = "/usr/local/bin/python3"
IMAGE_STDLIB = f"/usr/local/lib/python{PYTHON_XY}"  # where PYTHONHOME=/usr/local looks
IMAGE_SDK = "/usr/local/lib/mcp-sdk"
IMAGE_SERVER = "/srv/server.py"

DOCKERFILE = f"""\
FROM scratch
COPY rootfs/ /
ENV PYTHONHOME=/usr/local PYTHONPATH={IMAGE_SDK} PYTHONUNBUFFERED=1 PYTHONUTF8=1
EXPOSE {CONTAINER_PORT}/tcp
ENTRYPOINT ["{IMAGE_PYTHON}", "{IMAGE_SERVER}"]
"""

# Left out of the image: what a server never imports, the host's packages, optimised bytecode.
# The plain bytecode caches stay (mtimes survive the tar): a container answers after about 1.5 s
# with them and 4 s without, for some 20 MB more.
STDLIB_SKIPPED = frozenset(
    {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}
    | {"site-packages", "dist-packages", "lib-dynload"}  # lib-dynload is copied on its own
)
STDLIB_SKIPPED_PREFIXES = ("config-",)  # the static libpython and the build's makefiles
DYNLOAD_SKIPPED_PREFIXES = ("_tkinter", "_test", "_ctypes_test", "_xx", "xxlimited")

LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")

Keep = Callable[[PurePosixPath], bool]  # given a path relative to a tree's root: copy it?


async def ensure_mcp_image(docker: DockerAdapter) -> str:
    """Build `dtma-test/mcp-server:<hash>` unless it exists; return the tag.

    The server listens on `CONTAINER_PORT` at /mcp; `mcp_server/server.py` lists its switches.
    """
    sdk = await installed_sdk()
    tag = f"{IMAGE_REPOSITORY}:{_content_hash(sdk)}"
    if not await docker.image_exists(tag):
        await build_image(tag, await _build_context(sdk))
    return tag


async def installed_sdk() -> Path:
    """A `pip install --target` of the SDK, made once per SDK and Python version and kept."""
    target = CACHE_ROOT / f"mcp-{SDK_VERSION}-py{PYTHON_XY}"
    if target.is_dir():
        return target
    partial = target.with_name(f"{target.name}.partial-{secrets.token_hex(4)}")
    try:
        await _run(
            sys.executable,
            *("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"),
            *("--target", str(partial), f"mcp=={SDK_VERSION}"),
        )
        try:
            partial.rename(target)
        except OSError:
            if not target.is_dir():  # another session won the race; theirs is as good
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _content_hash(sdk: Path) -> str:
    """Covers the interpreter, the SDK and its dependencies' versions, the server, the recipe."""
    digest = hashlib.sha256()
    parts = [
        sys.version,
        platform.machine(),
        SDK_VERSION,
        *sorted(path.name for path in sdk.glob("*.dist-info")),
    ]
    for part in parts:
        digest.update(part.encode() + b"\0")
    digest.update(SERVER_SOURCE.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


async def _build_context(sdk: Path) -> bytes:
    binaries = await asyncio.to_thread(_compiled_binaries, sdk)
    libraries = await _shared_libraries(binaries, inside=[STDLIB, DYNLOAD, sdk])
    return await asyncio.to_thread(_context_tar, sdk, sorted(libraries))


def _compiled_binaries(sdk: Path) -> list[Path]:
    """The interpreter and every compiled module the image gets: what `ldd` must resolve."""
    dynload = [path for path in DYNLOAD.glob("*.so") if _keep_in_dynload(PurePosixPath(path.name))]
    return [INTERPRETER, *dynload, *sdk.rglob("*.so")]


async def _shared_libraries(binaries: list[Path], *, inside: list[Path]) -> set[Path]:
    """Every library `ldd` resolves for `binaries`, except those under the `inside` trees."""
    output = await _run("ldd", *map(str, binaries))
    if "not found" in output:
        missing = [line.strip() for line in output.splitlines() if "not found" in line]
        raise RuntimeError(f"ldd cannot resolve: {', '.join(missing)}")
    found = {Path(match) for match in LDD_PATH.findall(output)}
    return {path for path in found if not any(path.is_relative_to(tree) for tree in inside)}


def _context_tar(sdk: Path, libraries: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
        _add_bytes(tar, "Dockerfile", DOCKERFILE.encode(), mode=0o644)
        _add_file(tar, INTERPRETER, IMAGE_PYTHON)
        for library in libraries:
            _add_file(tar, library, str(library))
        _add_tree(tar, STDLIB, IMAGE_STDLIB, _keep_in_stdlib)
        _add_tree(tar, DYNLOAD, f"{IMAGE_STDLIB}/lib-dynload", _keep_in_dynload)
        _add_tree(tar, sdk, IMAGE_SDK, _keep_in_sdk)
        _add_file(tar, SERVER_SOURCE, IMAGE_SERVER)
        tmp = tarfile.TarInfo("rootfs/tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(tmp)
    return buffer.getvalue()


def _add_file(tar: tarfile.TarFile, source: Path, image_path: str) -> None:
    tar.add(source, arcname=_in_rootfs(image_path), filter=_owned_by_root)


def _add_tree(tar: tarfile.TarFile, source: Path, image_path: str, keep: Keep) -> None:
    """Copy `source` to `image_path`; a directory `keep` refuses is left out whole."""
    root = _in_rootfs(image_path)

    def tree_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        relative = PurePosixPath(info.name).relative_to(root)
        return _owned_by_root(info) if relative == PurePosixPath() or keep(relative) else None

    tar.add(source, arcname=root, filter=tree_filter)


def _keep_in_stdlib(relative: PurePosixPath) -> bool:
    name = relative.name
    if len(relative.parts) == 1 and name.startswith(STDLIB_SKIPPED_PREFIXES):
        return False
    return name not in STDLIB_SKIPPED and ".opt-" not in name


def _keep_in_dynload(relative: PurePosixPath) -> bool:
    return not relative.name.startswith(DYNLOAD_SKIPPED_PREFIXES)


def _keep_in_sdk(relative: PurePosixPath) -> bool:
    return relative.parts[0] != "bin"  # pip's console scripts, with the host's shebangs


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _in_rootfs(image_path: str) -> str:
    return "rootfs/" + image_path.lstrip("/")


def _add_bytes(tar: tarfile.TarFile, name: str, content: bytes, *, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mode = mode
    tar.addfile(info, io.BytesIO(content))


async def _run(*command: str) -> str:
    """Run `command`, return its standard output; raise with its output when it fails."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed with exit code {process.returncode}:\n{text}")
    return text
