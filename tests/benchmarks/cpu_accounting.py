"""CPU time, read from /proc and the cgroup files: one process (all its threads), Docker's own
processes by name, containers, and the whole machine; and the difference over a window."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

# What else works for a probe or a container: the daemon, the runtime's shims, and the userland
# proxies that the published loopback ports go through. /proc's comm is cut at 15 characters.
DOCKER_COMMANDS = ("dockerd", "containerd", "containerd-shim", "docker-proxy")
CGROUP_USAGE = (  # (path template, nanoseconds per unit, key in the file or None)
    ("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage", 1, None),
    ("/sys/fs/cgroup/cpu,cpuacct/docker/{id}/cpuacct.usage", 1, None),
    ("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat", 1000, "usage_usec"),
    ("/sys/fs/cgroup/docker/{id}/cpu.stat", 1000, "usage_usec"),
)


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def commands_cpu_s(names: tuple[str, ...]) -> dict[int, tuple[str, float]]:
    """pid -> (name, CPU seconds) of every process whose comm is one of `names`."""
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                name = (entry / "comm").read_text().strip()
                if name in names:
                    found[int(entry.name)] = (name, process_cpu_s(int(entry.name)))
    return found


def machine_busy_s() -> float:
    """CPU time of the whole machine (all cores) not idle, in seconds."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def container_cpu_s(container_id: str) -> float | None:
    """A container's CPU seconds from its cgroup (v1 or v2, cgroupfs or systemd), if readable."""
    for template, unit_ns, key in CGROUP_USAGE:
        path = Path(template.format(id=container_id))
        with contextlib.suppress(OSError, ValueError, StopIteration):
            text = path.read_text()
            if key is None:
                return int(text.strip()) * unit_ns / 1e9
            line = next(x for x in text.splitlines() if x.startswith(key + " "))
            return int(line.split()[1]) * unit_ns / 1e9
    return None


@dataclass(frozen=True)
class Snapshot:
    at: float
    process_s: float
    docker: dict[int, tuple[str, float]]
    containers: dict[str, float] | None  # None: some container's cgroup was not readable
    machine_s: float


def snapshot(pid: int, container_ids: list[str]) -> Snapshot:
    containers = {c: container_cpu_s(c) for c in container_ids}
    readable = {c: s for c, s in containers.items() if s is not None}
    return Snapshot(
        at=time.perf_counter(),
        process_s=process_cpu_s(pid),
        docker=commands_cpu_s(DOCKER_COMMANDS),
        containers=readable if len(readable) == len(containers) else None,
        machine_s=machine_busy_s(),
    )


@dataclass(frozen=True)
class Window:
    seconds: float
    process_s: float  # the process's CPU seconds
    docker_s: dict[str, float]  # by command name, over the processes alive throughout
    containers_s: float | None  # over the containers alive throughout
    machine_s: float  # every core, everything on the machine

    def percent(self, cpu_s: float) -> float:
        """CPU seconds as a percentage of one core over the window."""
        return 100 * cpu_s / self.seconds

    def parts(self, process: str) -> dict[str, float | None]:
        """CPU seconds by who spent them: the process (named so), Docker's, the containers."""
        named = {name.replace("-", "_"): cpu_s for name, cpu_s in self.docker_s.items()}
        return {process: self.process_s, **named, "containers": self.containers_s}


def window(before: Snapshot, after: Snapshot) -> Window:
    docker: dict[str, float] = dict.fromkeys(DOCKER_COMMANDS, 0.0)
    for pid, (name, cpu) in before.docker.items():
        if pid in after.docker:
            docker[name] += after.docker[pid][1] - cpu
    containers = None
    if before.containers is not None and after.containers is not None:
        shared = set(before.containers) & set(after.containers)
        containers = sum(after.containers[c] - before.containers[c] for c in shared)
    return Window(
        seconds=after.at - before.at,
        process_s=after.process_s - before.process_s,
        docker_s=docker,
        containers_s=containers,
        machine_s=after.machine_s - before.machine_s,
    )
