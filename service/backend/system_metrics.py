"""The host's load, memory, disk and uptime, in the shape the backend's heartbeat and the legacy
`GET /status` report them. Read from Linux's /proc; a figure that cannot be read is None."""

from __future__ import annotations

import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

PROC = Path("/proc")
KIB = 1024


def dtma_version() -> str:
    try:
        return metadata.version("dtma")
    except metadata.PackageNotFoundError:
        return "unknown"


def read(mount: str = "/", proc: Path = PROC) -> dict[str, Any]:
    return {
        "cpu_load_percent": cpu_load_percent(),
        "memory": memory(_text(proc / "meminfo")),
        "disk": disk(mount),
        "uptime_seconds": uptime_seconds(_text(proc / "uptime")),
    }


def cpu_load_percent() -> float | None:
    """The last minute's load average over the CPUs this process may use, in percent."""
    try:
        load, _, _ = os.getloadavg()
    except OSError:
        return None
    return round(100 * load / max(len(os.sched_getaffinity(0)), 1), 1)


def memory(meminfo: str | None) -> dict[str, int | None]:
    """Total, used and free bytes; "free" is what /proc/meminfo calls available (`free`'s
    "available" column: free memory plus caches the kernel can drop), "used" the rest."""
    fields = {}
    for line in (meminfo or "").splitlines():
        key, _, value = line.partition(":")
        number = value.split()[0] if value.split() else ""
        if number.isdigit():
            fields[key.strip()] = int(number) * KIB  # "kB" in the file means KiB
    total, available = fields.get("MemTotal"), fields.get("MemAvailable", fields.get("MemFree"))
    used = total - available if total is not None and available is not None else None
    return {"total_bytes": total, "used_bytes": used, "free_bytes": available}


def disk(mount: str) -> dict[str, Any]:
    try:
        usage = shutil.disk_usage(mount)
    except OSError:
        return {"mount": mount, "total_bytes": None, "used_bytes": None, "free_bytes": None}
    return {
        "mount": mount,
        "total_bytes": usage.total,
        "used_bytes": usage.used,
        "free_bytes": usage.free,
    }


def uptime_seconds(uptime: str | None) -> float | None:
    """The first figure of /proc/uptime: seconds since the host booted."""
    try:
        return float((uptime or "").split()[0])
    except (IndexError, ValueError):
        return None


def _text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
