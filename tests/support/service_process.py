"""`dtma serve` as a child process that a test can `kill -9` and start again on the same
database, and the `dtma` command line run against that database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from service.settings import SOURCES
from tests.conftest import TOKEN
from tests.support.ports import free_port
from tests.support.waiting import wait_until

DTMA = str(Path(sys.executable).with_name("dtma"))
STARTUP_S = 30.0
STOP_S = 20.0


def service_environment(
    database_url: str, workdir: Path, owner_labels: dict[str, str], **settings: str
) -> dict[str, str]:
    """This environment without any DTMA setting of its own, plus the test's settings."""
    inherited = {variable for variables in SOURCES.values() for variable in variables}
    environment = {k: v for k, v in os.environ.items() if k not in inherited}
    if "DOCKER_HOST" in os.environ:  # the same engine as the test's own client
        environment["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return environment | {
        "DTMA_AUTH_TOKEN": TOKEN,
        "DTMA_DATABASE_URL": database_url,
        "DTMA_OWNER_LABELS": ",".join(f"{k}={v}" for k, v in owner_labels.items()),
        "DTMA_KEY_FILE": str(workdir / "dtma.key"),
        **settings,
    }


class Service:
    """`dtma serve` on a free port, seeing only the objects with `owner_labels`.

    Each start logs to its own file in `workdir` (`serve-1.log`, `serve-2.log`, ...); extra
    `settings` are environment variables (`DTMA_SNAPSHOT_EVERY="25"`, say).
    """

    def __init__(
        self, database_url: str, workdir: Path, owner_labels: dict[str, str], **settings: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = service_environment(
            database_url,
            workdir,
            owner_labels,
            DTMA_PORT=str(self.port),
            DTMA_RECONCILE_INTERVAL="1",
            **settings,
        )
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"serve-{self.starts}.log"

    async def start(self, http: aiohttp.ClientSession) -> None:
        """Start it and wait until it answers `GET /healthz`."""
        self.starts += 1
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                DTMA,
                "serve",
                env=self.env,
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

        async def answers() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"dtma serve exited:\n{self.log_tail()}")
            async with http.get(f"{self.url}/healthz") as response:
                return response.status == 200

        await wait_until(answers, STARTUP_S, retrying_on=(aiohttp.ClientError,))

    def kill_now(self) -> None:
        """`kill -9`, at once and without awaiting: for a callback that must not yield."""
        os.kill(self.pid, signal.SIGKILL)

    async def kill(self, how: int = signal.SIGKILL) -> None:
        if self.process and self.process.returncode is None:
            self.process.send_signal(how)
        await self.wait()

    async def stop(self) -> None:
        """A graceful stop (SIGTERM): the projection runner snapshots on its way out."""
        await self.kill(signal.SIGTERM)
        assert self.process is not None
        assert self.process.returncode == 0, f"exit {self.process.returncode}:\n{self.log_tail()}"

    async def wait(self) -> None:
        if self.process is not None:
            await asyncio.wait_for(self.process.wait(), STOP_S)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def cli(self, *args: str, within: float = 60.0) -> Any:
        """`dtma <args>` on this service's database; its standard output as JSON."""
        process = await asyncio.create_subprocess_exec(
            DTMA,
            *args,
            env=self.env,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), within)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, f"dtma {' '.join(args)}: {err.decode(errors='replace')}"
        return json.loads(out)
