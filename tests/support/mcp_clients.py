"""The official SDK's MCP client, run as a process of its own (the SDK is not in the venv: it
is the `pip install --target` the test image is built from)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.support.mcp_image import installed_sdk

CLIENT = Path(__file__).parent / "mcp_client" / "client.py"


class SdkClient:
    """One client process: `initialized()` once its session is open, then `results()`."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(
        cls, url: str, token: str, calls: list[tuple[str, dict[str, Any]]]
    ) -> SdkClient:
        environ = {**os.environ, "PYTHONPATH": str(await installed_sdk())}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CLIENT),
            url,
            token,
            json.dumps(calls),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environ,
        )
        return cls(process)

    async def initialized(self, within: float = 30) -> None:
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), within)
        if line.strip() != b"initialized":
            raise AssertionError(f"the client did not initialize: {await self._failure(line)}")

    async def results(self, within: float = 60) -> list[dict[str, Any]]:
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), within)
        if line.strip() == b"initialized":  # not waited for by `initialized()`
            line = await asyncio.wait_for(self._process.stdout.readline(), within)
        await asyncio.wait_for(self._process.wait(), within)
        if not line.startswith(b"["):
            raise AssertionError(f"the client failed: {await self._failure(line)}")
        found: list[dict[str, Any]] = json.loads(line)
        return found

    async def _failure(self, line: bytes) -> str:
        assert self._process.stderr is not None
        error = await self._process.stderr.read()
        return (line + error).decode(errors="replace")[-3000:]

    def kill(self) -> None:
        if self._process.returncode is None:
            self._process.kill()
