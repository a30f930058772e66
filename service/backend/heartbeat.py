"""The heartbeat to the backend: what it says (pure) and when it is sent (at start, every
interval, at once when poked). Knows the backend only through `service.backend`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from service import loops
from service.backend import client as backend

if TYPE_CHECKING:
    from service.legacy import handlers as legacy

logger = logging.getLogger(__name__)

PATH = "/heartbeat"
TOOLBOX_STATUSES = frozenset({"pending", "starting", "running", "stopping", "stopped", "error"})


def heartbeat_payload(
    version: str,
    system_status: Mapping[str, Any],
    tool_statuses: Sequence[Mapping[str, Any]],
    mcp_servers: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The body of `POST /heartbeat`, with the contract's four keys and no others."""
    return {
        "dtma_version": version,
        "system_status": dict(system_status),
        "tool_statuses": [dict(status) for status in tool_statuses],
        "mcp_servers": [dict(server) for server in mcp_servers],
    }


def tool_status_on_toolbox(status: str) -> str:
    """The backend's word for a legacy tool status. `legacy_decisions.tool_status` already
    speaks the backend's six words; anything else (a bug) is reported as an error, not hidden."""
    return status if status in TOOLBOX_STATUSES else "error"


def tool_statuses(tools: Iterable[legacy.Tool]) -> list[dict[str, Any]]:
    """The heartbeat's `tool_statuses` for the legacy tools (`legacy.every_tool`)."""
    return [tool_status(tool) for tool in tools]


def tool_status(tool: legacy.Tool) -> dict[str, Any]:
    legacy_tool = tool.server.spec.legacy
    instance = tool.instance
    return {
        "account_tool_instance_id": legacy_tool.account_tool_instance_id if legacy_tool else None,
        "status_on_toolbox": tool_status_on_toolbox(tool.status),
        "runtime_details": {
            "instance_name_on_toolbox": tool.name,
            "container_id": instance.container_id if instance else None,
            "container_state": instance.state if instance else None,
            "restart_count": instance.restart_count if instance else 0,
            "exit_code": instance.exit_code if instance else None,
        },
    }


class Heartbeat:
    """Sends `payload()` to `POST /heartbeat` at start, every `interval_s` and at once after
    `poke()`. Each send builds a fresh payload. A failed send is retried after
    `first_retry_delay_s`, doubling up to `max_retry_delay_s` (never longer than the interval),
    and sooner when poked. `run()` raises nothing but its cancellation.

    `sent` and `failed` count deliveries and failed sends; `last_error` is the latest failure's
    message, None once a send succeeds.
    """

    def __init__(
        self,
        client: backend.BackendClient,
        payload: Callable[[], Mapping[str, Any]],
        interval_s: float = 60.0,
        max_retry_delay_s: float = 60.0,
        *,
        first_retry_delay_s: float = 1.0,
    ) -> None:
        self._client = client
        self._payload = payload
        self._interval_s = interval_s
        self._retry = loops.Retry(
            loops.Doubling(first=first_retry_delay_s, ceiling=max_retry_delay_s)
        )
        self._wake = asyncio.Event()
        self.sent = 0
        self.failed = 0
        self.last_error: str | None = None

    def poke(self) -> None:
        """Send as soon as the send in flight, if any, is over. Never blocks; pokes that come
        while a send is in flight make one send, not one each. Call it on the loop's thread."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            # Cleared before the payload is built: a poke from now on asks for a newer one.
            self._wake.clear()
            if await self._send():
                self._retry.reset()
                wait = self._interval_s
            else:
                wait = min(self._retry.next(), self._interval_s)
            await self._pause(wait)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _send(self) -> bool:
        try:
            payload = self._payload()
        except Exception:
            logger.exception("heartbeat not sent: building its payload failed")
            return self._failure("building the payload failed")
        try:
            await self._client.post(PATH, payload)
        except backend.BackendError as exc:
            logger.warning("heartbeat not delivered: %s", exc)
            return self._failure(str(exc))
        except Exception as exc:
            # Only the type: the text of, say, an encoding error may quote the payload.
            logger.warning("heartbeat not sent: %s", type(exc).__name__)
            return self._failure(type(exc).__name__)
        self.sent += 1
        self.last_error = None
        return True

    def _failure(self, message: str) -> bool:
        self.failed += 1
        self.last_error = message
        return False
