"""A real image registry for the tests: Debian's `docker-registry` (the CNCF distribution
registry) on 127.0.0.1 with htpasswd auth, which Docker reaches over plain HTTP there. Images are
pushed with a login kept in a private DOCKER_CONFIG, never the user's."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.docker_cli import build_image, docker_cli
from tests.support.ports import free_port

REGISTRY_BINARY = "/usr/bin/docker-registry"
READY_S = 30.0

CONFIG = """\
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {address}
auth:
  htpasswd:
    realm: dtma-test
    path: {htpasswd}
"""


@dataclass(frozen=True, slots=True)
class Registry:
    address: str  # 127.0.0.1:<port>, as image references name it
    username: str
    password: str
    docker_config: Path  # a DOCKER_CONFIG logged in to it

    async def push(self, local: str, repository: str, tag: str) -> str:
        """Push the local image `local` as `repository:tag` and remove that name from this
        host again (the image stays under `local`); the pushed reference."""
        reference = f"{self.address}/{repository}:{tag}"
        environ = {**os.environ, "DOCKER_CONFIG": str(self.docker_config)}
        await docker_cli("tag", local, reference)
        try:
            await _docker_env(environ, "push", "--quiet", reference)
        finally:
            await docker_cli("image", "rm", reference)
        return reference


async def _docker_env(environ: dict[str, str], *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "docker",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    _output, error = await process.communicate()
    if process.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {error.decode(errors='replace')}")


def start_registry(workdir: Path) -> tuple[subprocess.Popen[bytes], Registry]:
    """Start a registry under `workdir`; fails (not skips) if the package is missing."""
    if shutil.which(REGISTRY_BINARY) is None or shutil.which("htpasswd") is None:
        raise AssertionError(
            "no docker-registry: run scripts/setup-services.sh (docker-registry apache2-utils)"
        )
    username, password = "dtma-test", secrets.token_urlsafe(18)
    htpasswd = workdir / "htpasswd"
    made = subprocess.run(["htpasswd", "-Bbn", username, password], check=True, capture_output=True)
    htpasswd.write_bytes(made.stdout)
    address = f"127.0.0.1:{free_port()}"
    config = workdir / "config.yml"
    config.write_text(CONFIG.format(root=workdir / "data", address=address, htpasswd=htpasswd))
    process = subprocess.Popen(
        [REGISTRY_BINARY, "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_ready(address, process)
    docker_config = workdir / "docker-config"
    docker_config.mkdir()
    subprocess.run(
        ["docker", "login", address, "--username", username, "--password-stdin"],
        input=password.encode(),
        env={**os.environ, "DOCKER_CONFIG": str(docker_config)},
        check=True,
        capture_output=True,
    )
    return process, Registry(address, username, password, docker_config)


def stop_registry(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_ready(address: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"docker-registry exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=1)
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, and asking for credentials
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"docker-registry did not answer on {address} within {READY_S:g} s")


async def moved_variant(local: str, label: str, payload: bytes = b"") -> str:
    """A new image made from `local` with one more label (other bits, another digest) and,
    given a `payload`, a layer holding it at /payload."""
    tag = f"{local.rsplit(':', 1)[0]}-variant:{label}"
    dockerfile = f"FROM {local}\nLABEL dtma.test.variant={label}\n"
    files = {"payload": payload} if payload else {}
    if payload:
        dockerfile += "COPY payload /payload\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in {"Dockerfile": dockerfile.encode(), **files}.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(content)
            archive.addfile(entry, io.BytesIO(content))
    await build_image(tag, buffer.getvalue())
    return tag


async def remove_pulled(address: str) -> None:
    """Every name of this registry's images on this host (tags and digests): the tests leave
    the engine holding no image from a registry that is gone."""
    listed = await docker_cli(
        "image", "ls", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"
    )
    for line in listed.splitlines():
        repository, tag, digest = line.split()
        if not repository.startswith(f"{address}/"):
            continue
        names = [f"{repository}:{tag}"] if tag != "<none>" else []
        names += [f"{repository}@{digest}"] if digest != "<none>" else []
        for name in names:
            with contextlib.suppress(AssertionError):  # in use, or gone with another name
                await docker_cli("image", "rm", name)
