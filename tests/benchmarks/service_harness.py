"""What the service benchmarks (deploy.py, failure.py) share: printing, a running service over
HTTP, the log read as SSE, Docker's own die events, `docker run` flags like DTMA's, and a
`dtma serve` process of its own. The scripts put the repository on sys.path before importing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import aiohttp

from service import errors
from service.docker.adapter import DockerAdapter
from tests.support.docker import remove_containers
from tests.support.mcp_image import CONTAINER_PORT
from tests.support.ports import free_port
from tests.support.service_process import service_environment

TOKEN = secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MEMORY_MB = 256  # DTMA's containers get it from the group's limit; docker run from a flag
PIDS = 512  # DTMA's default pids limit, given to docker run too
STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 20.0


class Disturbed(Exception):  # noqa: N818 - a measurement to repeat, not an error
    """Something outside the benchmark touched its containers (another DTMA, a sweep)."""


def note(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def metric(name: str, value: float, digits: int = 3) -> None:
    print(f"{name}: {value:.{digits}f}", flush=True)


def p95(values: Sequence[float]) -> float:
    """Nearest rank: the smallest value at least 95% of the values are less than or equal to."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def wall_ns(recorded_at: str) -> int:
    """An event's recordedAt (UTC, microseconds) as nanoseconds since the epoch."""
    moment = datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


async def cli(*args: str, check: bool = True) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    code = process.returncode or 0
    if check and code != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({code}): {err.decode().strip()}")
    return code, out.decode(), err.decode()


def run_flags(name: str, network: str, alias: str, publish: str) -> list[str]:
    """`docker run` flags giving a container what DTMA gives its own, minus DTMA's labels."""
    return [
        *("--name", name, "--network", network, "--network-alias", alias, "-p", publish),
        *("--memory", f"{MEMORY_MB}m", "--memory-swap", f"{MEMORY_MB}m"),
        *("--pids-limit", str(PIDS), "--cap-drop", "ALL"),
        *("--security-opt", "no-new-privileges", "--restart", "no"),
    ]


def default_publish() -> str:
    return f"127.0.0.1::{CONTAINER_PORT}"


# -- a running service -------------------------------------------------------------------------


@dataclass
class Service:
    """A DTMA service reached over HTTP, and the owner labels it stamps on what it creates."""

    session: aiohttp.ClientSession
    owner: dict[str, str]

    async def get(self, path: str) -> Any:
        async with self.session.get(path) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status} {await response.text()}")
            return await response.json()

    async def post(self, path: str, body: Any) -> Any:
        async with self.session.post(path, json=body) as response:
            if response.status not in (200, 202):
                raise RuntimeError(f"POST {path}: {response.status} {await response.text()}")
            return await response.json()

    async def log(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        after = 0
        while page := (await self.get(f"/events?after={after}&limit=1000"))["events"]:
            events.extend(page)
            after = page[-1]["position"]
        return events


async def uncancelled(cleanup: Awaitable[None]) -> None:
    """Await a cleanup to its end even if this task is cancelled meanwhile (a first Ctrl-C
    cancels the main task), then pass the cancellation on."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = cancelled or not task.done()
    task.result()
    if cancelled:
        raise asyncio.CancelledError


async def sweep(docker: DockerAdapter, owner: dict[str, str]) -> None:
    """Containers, then networks; a removal someone else has in progress is waited out."""
    for attempt in range(10):
        try:
            await remove_containers(docker, owner)
            for name, labels in await docker.list_managed_networks():
                if all(labels.get(k) == v for k, v in owner.items()):
                    await docker.remove_network(name)
            return
        except errors.ServiceError as exc:
            if attempt == 9:
                raise
            note(f"sweep: {exc.message}; again")
            await asyncio.sleep(0.5)


class EventFollower:
    """`GET /events/stream` read in the background; every event with its arrival times."""

    def __init__(self, service: Service, after: int) -> None:
        self.events: list[tuple[float, int, dict[str, Any]]] = []  # (perf, wall ns, event)
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._follow(service, after))

    async def _follow(self, service: Service, after: int) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with service.session.get(f"/events/stream?after={after}", timeout=timeout) as answer:
            async for raw in answer.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    arrival, arrival_ns = time.perf_counter(), time.time_ns()
                    self.events.append((arrival, arrival_ns, json.loads(line[5:])))
                    self._changed.set()

    async def wait_for(
        self, wanted: Callable[[dict[str, Any]], bool], start: int, within: float
    ) -> tuple[int, float, int, dict[str, Any]]:
        """The first event from index `start` on that is `wanted`: (index, perf, wall ns, it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        index = start
        while True:
            while index < len(self.events):
                arrival, arrival_ns, event = self.events[index]
                if wanted(event):
                    return index, arrival, arrival_ns, event
                index += 1
            if self._task.done():
                raise RuntimeError(f"the event stream ended: {self._task.exception()!r}")
            self._changed.clear()
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                await self._changed.wait()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class DieWatcher:
    """The engine's own die events for managed containers: their time and our arrival (ns)."""

    def __init__(self) -> None:
        self.died: dict[str, tuple[int, int]] = {}
        self._adapter = DockerAdapter()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        async for event in self._adapter.events():
            if event.action == "die":
                self.died[event.container_id] = (event.time_nano, time.time_ns())

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._adapter.close()


class ForeignEvents:
    """Docker events of managed containers that do not carry `owner`, counted while it runs:
    every one wakes that service's listener, and a die or destroy its reconciler."""

    def __init__(self, owner: dict[str, str]) -> None:
        self.events = 0
        self.deaths = 0  # die, destroy, oom
        self._owner = owner
        self._adapter = DockerAdapter()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        async for event in self._adapter.events():
            if any(event.labels.get(k) != v for k, v in self._owner.items()):
                self.events += 1
                self.deaths += event.action in ("die", "destroy", "oom")

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._adapter.close()


# -- `dtma serve` as a process of its own ------------------------------------------------------


@dataclass
class ProcessService(Service):
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def dtma_command() -> list[str]:
    """The console script next to this interpreter (pyproject's `dtma`), else the module."""
    script = Path(sys.executable).with_name("dtma")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]


def open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


@contextlib.asynccontextmanager
async def service_process(docker: DockerAdapter, tag: str) -> AsyncIterator[ProcessService]:
    """`dtma serve` on a free port with a temporary SQLite file and owner labels of its own;
    afterwards it is stopped and whatever carries its labels is removed."""
    owner = {"dtma.bench": f"{tag}-{os.getpid()}-{secrets.token_hex(3)}"}
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"dtma-bench-{tag}-") as name:
        directory = Path(name)
        log_path = directory / "dtma.log"
        with open_log(log_path) as log:
            process = await asyncio.create_subprocess_exec(
                *dtma_command(),
                "serve",
                env=service_environment(
                    f"sqlite:///{directory / 'dtma.db'}",
                    directory,
                    owner,
                    DTMA_AUTH_TOKEN=TOKEN,
                    DTMA_HOST="127.0.0.1",
                    DTMA_PORT=str(port),
                ),
                cwd=directory,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C is ours to handle: we stop it after use
            )
        try:
            async with aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{port}", headers=AUTH
            ) as session:
                service = ProcessService(session, owner, process, log_path)
                await until_up(service)
                try:
                    yield service
                except Exception:
                    note(f"dtma serve ({tag}), the end of its log:\n{service.log_tail()}")
                    raise
        finally:
            await uncancelled(stopped_and_swept(process, docker, owner))


async def stopped_and_swept(
    process: asyncio.subprocess.Process, docker: DockerAdapter, owner: dict[str, str]
) -> None:
    await stop(process)
    await sweep(docker, owner)


async def until_up(service: ProcessService) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    while True:
        if service.process.returncode is not None:
            raise RuntimeError(
                f"dtma serve exited with {service.process.returncode}:\n{service.log_tail()}"
            )
        with contextlib.suppress(aiohttp.ClientError):
            async with service.session.get("/healthz") as response:
                if response.status == 200:
                    return
        if loop.time() > deadline:
            raise RuntimeError(f"dtma serve does not answer:\n{service.log_tail()}")
        await asyncio.sleep(0.05)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (aiohttp shuts down gracefully), then SIGKILL if it takes too long."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            note(f"dtma serve ({process.pid}) ignored SIGTERM; killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
