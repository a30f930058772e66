"""Docker's event stream for managed containers, as `DockerEvent`s.

`GET /events` is read directly (aiodocker's `DockerEvents` runs one shared background task per
client, turns `time` into a datetime and ends its stream silently when the connection drops).
Errors are left to the caller, `DockerAdapter.events`, which translates them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp

from service.docker.objects import MANAGED_LABEL, NANO

# Attributes Docker adds to an event next to the container's labels.
EVENT_ATTRIBUTES = frozenset(
    {"exitCode", "signal", "image", "name", "execID", "execDuration", "oldName"}
)
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=10)


@dataclass(frozen=True)
class DockerEvent:
    """A container event: create, start, die, kill, oom, stop, destroy, health_status, ...

    Docker's "health_status: healthy" becomes action "health_status" and health "healthy";
    other actions with a detail after a colon (exec_start: <command>) keep the action only.
    `exit_code` is set on die events. `time_nano` is the engine's clock, in nanoseconds.
    """

    action: str
    container_id: str
    name: str
    image: str
    labels: Mapping[str, str]
    time_nano: int
    exit_code: int | None = None
    health: str | None = None


def since_param(since_nano: int) -> str:
    """Docker's `since`: seconds with a nanosecond fraction. It is inclusive."""
    seconds, nanos = divmod(since_nano, NANO)
    return f"{seconds}.{nanos:09d}"


def events_params(since_nano: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "filters": {"type": ["container"], "label": [f"{MANAGED_LABEL}=true"]}
    }
    if since_nano is not None:
        params["since"] = since_param(since_nano)
    return params


def parse_event(raw: Mapping[str, Any]) -> DockerEvent | None:
    """The `DockerEvent` of one message of the stream; None for a message not about a container."""
    if raw.get("Type") != "container":
        return None
    actor = raw.get("Actor") or {}
    attributes: Mapping[str, str] = actor.get("Attributes") or {}
    action, _, detail = str(raw.get("Action", "")).partition(":")
    exit_code = attributes.get("exitCode")
    return DockerEvent(
        action=action,
        container_id=str(actor.get("ID") or raw.get("id", "")),
        name=attributes.get("name", ""),
        image=attributes.get("image", ""),
        labels={k: v for k, v in attributes.items() if k not in EVENT_ATTRIBUTES},
        time_nano=_time_nano(raw),
        exit_code=int(exit_code) if exit_code is not None else None,
        health=detail.strip() if action == "health_status" else None,
    )


def _time_nano(raw: Mapping[str, Any]) -> int:
    if "timeNano" in raw:
        return int(raw["timeNano"])
    return int(raw.get("time", 0)) * NANO


async def stream_events(
    client: aiodocker.Docker, since_nano: int | None
) -> AsyncGenerator[DockerEvent, None]:
    """Managed containers' events from `since_nano` on (or from now), until the stream breaks.

    The stream has no end of its own: when it ends (or stops mid-line), the connection was lost,
    and this raises `ConnectionError`.
    """
    query = client._query("events", params=events_params(since_nano), timeout=STREAM_TIMEOUT)
    async with query as response:
        try:
            while (line := await response.content.readline()).endswith(b"\n"):
                if line.strip() and (event := parse_event(json.loads(line))):
                    yield event
        finally:
            response.close()  # release() would wait for the end of an endless stream
    raise ConnectionError("the Docker event stream ended")
