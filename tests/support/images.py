"""Images the tests build locally (no registry is reachable): a static busybox, FROM scratch."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from service.docker.adapter import DockerAdapter
from tests.support.docker_cli import build_image

BUSYBOX_TAG = "dtma-test/busybox:1"
BUSYBOX_PATH = Path(
    "/bin/busybox"
)  # Debian's busybox-static; scripts/setup-services.sh installs it

BUSYBOX_DOCKERFILE = b"""\
FROM scratch
COPY busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
"""


async def ensure_busybox_image(docker: DockerAdapter) -> str:
    """Build `dtma-test/busybox:1` unless it exists; commands are applets: ["sh", "-c", ...]."""
    if not await docker.image_exists(BUSYBOX_TAG):
        await build_image(BUSYBOX_TAG, _busybox_context())
    return BUSYBOX_TAG


def _busybox_context() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_file(tar, "Dockerfile", BUSYBOX_DOCKERFILE, mode=0o644)
        _add_file(tar, "busybox", BUSYBOX_PATH.read_bytes(), mode=0o755)
    return buffer.getvalue()


def _add_file(tar: tarfile.TarFile, name: str, content: bytes, *, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mode = mode
    tar.addfile(info, io.BytesIO(content))


COMMANDLESS_TAG = "dtma-test/commandless:1"


async def ensure_commandless_image(docker: DockerAdapter) -> str:
    """Build `dtma-test/commandless:1` unless it exists: one file and neither a command nor an
    entrypoint, so Docker refuses to make a container of it without one."""
    if not await docker.image_exists(COMMANDLESS_TAG):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            _add_file(tar, "Dockerfile", b"FROM scratch\nCOPY data /data\n", mode=0o644)
            _add_file(tar, "data", b"no command here\n", mode=0o644)
        await build_image(COMMANDLESS_TAG, buffer.getvalue())
    return COMMANDLESS_TAG
