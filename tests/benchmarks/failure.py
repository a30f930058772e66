"""Failure detection and recovery latency of DTMA against a container's cold start, and the CPU
its health probes cost.

    .venv/bin/python tests/benchmarks/failure.py [--kills 20] [--replicas 20] [--cold-starts 5]
        [--replicas-overhead 50] [--window 20] [--quick]

DTMA runs as `dtma serve`, a process of its own (a free port on 127.0.0.1, a temporary SQLite
file, owner labels of its own), with the default circuit breaker raised to 1000 failures so that
no kill opens a circuit. Every MCP server has `healthCheck: {type: mcp, interval 1000 ms}`.

Kills: `--replicas` single-replica servers of the MCP test image, all healthy; one replica at a
time (round robin) is killed with `docker kill`, timed from just before the CLI is spawned to
(a) its ContainerDied arriving on `GET /events/stream`, (b) `GET /health/mcp/{id}`, polled every
10 ms, no longer showing that container as running and healthy, (c) the ReplicaHealthChanged
"healthy" of the replacement container arriving on the stream. Before the next kill every server
is healthy again (`GET /mcp-servers/status`), then 1 s of quiet.

Cold start, the baseline for (c), spread between the kills (so it runs on the same busy machine):
`docker run -d` of the image with the flags DTMA gives its containers, timed from the spawn of
the CLI until a POST `initialize` to the published port answers (polled every 20 ms).

Probe overhead: a fresh service with `--replicas-overhead` replicas healthy, its CPU (utime +
stime in /proc/<pid>/stat) over `--window` seconds, with `type: none` (the baseline) and then
`type: mcp` every 1000 ms. Prints `metric: value` lines, then a summary; notes go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.*

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import AsyncIterator, Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402

from service import probes  # noqa: E402
from service.docker import DockerAdapter  # noqa: E402
from tests.benchmarks.service_harness import (  # noqa: E402
    MEMORY_MB,
    DieWatcher,
    Disturbed,
    EventFollower,
    ProcessService,
    Service,
    cli,
    free_port,
    metric,
    note,
    p95,
    run_flags,
    service_process,
    wall_ns,
)
from tests.support.mcp_image import CONTAINER_PORT, ensure_mcp_image  # noqa: E402

INTERVAL_MS = 1000
MCP_CHECK = {"type": "mcp", "healthCheckInterval": INTERVAL_MS}
NONE_CHECK = {"type": "none"}
BREAKER = {"failureThreshold": 1000}  # the default for every server: kills never open it
HEALTH_POLL_S = 0.01
COLD_POLL_S = 0.02
STATUS_POLL_S = 0.02
SETTLE_S = 1.0
OVERHEAD_SETTLE_S = 5.0  # after all are healthy: the 250 ms starting probes are over
DEATH_TIMEOUT_S = 30.0
RECOVERY_TIMEOUT_S = 120.0
HEALTHY_TIMEOUT_S = 300.0
MAX_DISTURBED = 5
MAX_SERVERS = 50  # per deploy
FULL = {"kills": 20, "replicas": 20, "cold_starts": 5, "replicas_overhead": 50, "window": 20.0}
QUICK = {"kills": 3, "replicas": 4, "cold_starts": 2, "replicas_overhead": 6, "window": 5.0}


# -- deploying and waiting ---------------------------------------------------------------------


def deploy_body(group_id: str, image: str, sizes: list[int], check: dict[str, Any]) -> Any:
    servers = [
        {"id": f"{group_id}-s{i:02d}", "image": image, "replicas": n, "healthCheck": check}
        for i, n in enumerate(sizes)
    ]
    return {"groupId": group_id, "resourceLimits": {"memoryMb": MEMORY_MB}, "mcpServers": servers}


def split(replicas: int) -> list[int]:
    """Replicas per server: at most MAX_SERVERS servers, as few replicas each as that allows."""
    each = math.ceil(replicas / MAX_SERVERS)
    servers = math.ceil(replicas / each)
    return [each] * (servers - 1) + [replicas - each * (servers - 1)]


async def deploy(service: Service, image: str, sizes: list[int], check: dict[str, Any]) -> str:
    """Raise the breaker, deploy one group, wait until every replica is healthy; the group id."""
    await service.post("/health/circuit-breaker", BREAKER)
    group_id = f"f{secrets.token_hex(3)}"
    started = time.perf_counter()
    await service.post("/mcp-servers/deploy", deploy_body(group_id, image, sizes, check))
    await until_full_health(service, group_id)
    note(f"{sum(sizes)} replicas healthy after {time.perf_counter() - started:.1f} s")
    return group_id


async def until_full_health(service: Service, group_id: str) -> float:
    """Poll the status until every server of the group has all its replicas healthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEALTHY_TIMEOUT_S
    while True:
        servers = [
            s
            for s in (await service.get("/mcp-servers/status"))["mcpServers"]
            if s["groupId"] == group_id
        ]
        seen = time.perf_counter()
        if opened := [s["id"] for s in servers if s["circuitState"] != "closed"]:
            raise RuntimeError(f"circuits not closed: {opened}")
        if servers and all(s["healthyReplicas"] >= s["desiredReplicas"] for s in servers):
            return seen
        if loop.time() > deadline:
            raise RuntimeError(f"not all healthy after {HEALTHY_TIMEOUT_S:g} s: {servers}")
        await asyncio.sleep(STATUS_POLL_S)


# -- the baseline: a cold start by docker run --------------------------------------------------


async def returned_at(*args: str) -> float:
    """Run the docker CLI; the moment it exited."""
    await cli(*args)
    return time.perf_counter()


@dataclass
class ColdStarts:
    """`docker run -d` of the image until its MCP endpoint answers `initialize`, in seconds."""

    session: aiohttp.ClientSession
    image: str
    network: str
    labels: dict[str, str]
    answered: list[float] = field(default_factory=list)
    returned: list[float] = field(default_factory=list)  # until `docker run -d` exited

    async def measure(self) -> None:
        name = f"dtma-bench-cold-{os.getpid()}-{secrets.token_hex(3)}"
        port = free_port()
        flags = run_flags(name, self.network, "cold", f"127.0.0.1:{port}:{CONTAINER_PORT}")
        labels = [f"--label={k}={v}" for k, v in self.labels.items()]
        started = time.perf_counter()
        run = asyncio.create_task(returned_at("run", "-d", *flags, *labels, self.image))
        try:
            answered = await self._until_answered(f"http://127.0.0.1:{port}/mcp", run)
            self.returned.append(await run - started)
            self.answered.append(answered - started)
        finally:
            run.cancel()
            await cli("rm", "-f", name, check=False)

    async def _until_answered(self, url: str, run: asyncio.Task[float]) -> float:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECOVERY_TIMEOUT_S
        while loop.time() < deadline:
            if run.done() and run.exception() is not None:
                raise RuntimeError(f"docker run failed: {run.exception()}")
            if await self._initialize(url):
                return time.perf_counter()
            await asyncio.sleep(COLD_POLL_S)
        raise RuntimeError(f"the cold-start container never answered at {url}")

    async def _initialize(self, url: str) -> bool:
        """POST initialize (the bytes the service's probe sends): answered with a result?"""
        try:
            async with (
                asyncio.timeout(1.0),
                self.session.post(url, data=probes.INITIALIZE, headers=probes.POST_HEADERS) as r,
            ):
                body = b""
                while r.status == 200 and (chunk := await r.content.readany()):
                    body += chunk
                    if b'"protocolVersion"' in body:
                        return True
                return False
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False


# -- kills -------------------------------------------------------------------------------------


@dataclass
class Kill:
    server_id: str
    died_ms: float  # (a) the kill to ContainerDied on SSE
    visible_ms: float  # (b) the kill to GET /health/mcp/{id} showing it
    healthy_s: float  # (c) the kill to the replacement's ReplicaHealthChanged healthy on SSE
    full_s: float  # the kill to GET /mcp-servers/status showing every replica healthy again
    seen: str  # what (b) saw: the replica's state/health, or another container
    polls: int  # GET /health/mcp/{id} requests until (b)
    engine_die_ms: float | None  # the engine's die time (its clock) after the kill began
    listener_ms: float | None  # the engine's die time to the ContainerDied's recordedAt
    delivery_ms: float  # recordedAt to the arrival on SSE
    removed_s: float  # the kill to the old container's ContainerRemoved on SSE
    created_s: float  # ... to the replacement's ContainerCreated
    started_s: float  # ... to its ContainerStarted


def replacement(kind: str, server_id: str, old: str) -> Callable[[dict[str, Any]], bool]:
    """An event of that type about another container of the server (healthy, for health)."""

    def wanted(event: dict[str, Any]) -> bool:
        data = event["data"]
        return bool(
            event["type"] == kind
            and data.get("server_id") == server_id
            and data.get("container_id") != old
            and (kind != "ReplicaHealthChanged" or data.get("health") == "healthy")
        )

    return wanted


def about(kind: str, container_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: bool(e["type"] == kind and e["data"].get("container_id") == container_id)


async def healthy_replica(service: Service, server_id: str) -> tuple[int, str]:
    instances = (await service.get(f"/mcp-servers/{server_id}"))["instances"]
    for instance in instances:
        if instance["state"] == "running" and instance["health"] == "healthy":
            return int(instance["replica"]), str(instance["containerId"])
    raise Disturbed(f"{server_id} has no healthy replica: {instances}")


async def until_death_visible(
    service: Service, server_id: str, replica: int, container_id: str
) -> tuple[float, int, str]:
    """Poll GET /health/mcp/{id} until that replica is not `container_id` running and healthy."""
    polls = 0
    while True:
        answer = await service.get(f"/health/mcp/{server_id}")
        seen_at = time.perf_counter()
        polls += 1
        entry = next((r for r in answer["replicas"] if r["replica"] == replica), None)
        if entry is None:
            return seen_at, polls, "replica gone"
        if entry["containerId"] != container_id:
            return seen_at, polls, f"another container ({entry['state']})"
        if entry["state"] != "running" or entry["health"] != "healthy":
            return seen_at, polls, f"{entry['state']}/{entry['health']}"
        await asyncio.sleep(HEALTH_POLL_S)


async def kill_one(
    service: Service, follower: EventFollower, watcher: DieWatcher, group_id: str, server_id: str
) -> Kill:
    replica, old = await healthy_replica(service, server_id)
    start = len(follower.events)
    started_ns, started = time.time_ns(), time.perf_counter()
    visible = asyncio.create_task(until_death_visible(service, server_id, replica, old))
    try:
        process = await asyncio.create_subprocess_exec(
            "docker", "kill", old, stdout=asyncio.subprocess.DEVNULL
        )
        if await process.wait() != 0:
            raise Disturbed(f"docker kill {old[:12]} failed")
        died_i, died_at, died_ns, died = await follower.wait_for(
            about("ContainerDied", old), start, DEATH_TIMEOUT_S
        )
        visible_at, polls, seen = await asyncio.wait_for(visible, DEATH_TIMEOUT_S)
        times = [died_at]
        for wanted in (
            about("ContainerRemoved", old),
            replacement("ContainerCreated", server_id, old),
        ):
            index, at, _ns, _e = await follower.wait_for(wanted, died_i, RECOVERY_TIMEOUT_S)
            times.append(at)
        for kind in ("ContainerStarted", "ReplicaHealthChanged"):
            index, at, _ns, _e = await follower.wait_for(
                replacement(kind, server_id, old), index, RECOVERY_TIMEOUT_S
            )
            times.append(at)
    except TimeoutError as exc:
        raise Disturbed(f"no death or no healthy replacement for {old[:12]}") from exc
    finally:
        visible.cancel()
    full = await until_full_health(service, group_id)
    recorded_ns = wall_ns(died["recordedAt"])
    engine = watcher.died.get(old)
    if engine is not None and engine[0] < started_ns:
        raise Disturbed(f"{old[:12]} died before the kill")
    return Kill(
        server_id=server_id,
        died_ms=1000 * (died_at - started),
        visible_ms=1000 * (visible_at - started),
        healthy_s=times[4] - started,
        full_s=full - started,
        seen=seen,
        polls=polls,
        engine_die_ms=(engine[0] - started_ns) / 1e6 if engine else None,
        listener_ms=(recorded_ns - engine[0]) / 1e6 if engine else None,
        delivery_ms=(died_ns - recorded_ns) / 1e6,
        removed_s=times[1] - started,
        created_s=times[2] - started,
        started_s=times[3] - started,
    )


def schedule(kills: int, cold_starts: int) -> list[str]:
    """Kills and cold starts spread evenly over one sequence."""
    keyed = [((i + 0.5) / kills, "kill") for i in range(kills)]
    keyed += [((i + 0.5) / cold_starts, "cold") for i in range(cold_starts)]
    return [what for _key, what in sorted(keyed)]


async def kill_phase(
    docker: DockerAdapter, image: str, args: argparse.Namespace, cold: ColdStarts
) -> list[Kill]:
    watcher = DieWatcher()
    try:
        async with service_process(docker, "failure-kills") as service:
            group_id = await deploy(service, image, [1] * args.replicas, MCP_CHECK)
            await asyncio.sleep(SETTLE_S)
            head = (await service.get("/mcp-servers/status"))["position"]
            follower = EventFollower(service, head)
            try:
                return await kill_sequence(service, follower, watcher, group_id, args, cold)
            finally:
                await follower.close()
                report_log_anomalies(await service.log(), head)
    finally:
        await watcher.close()


async def kill_sequence(
    service: ProcessService,
    follower: EventFollower,
    watcher: DieWatcher,
    group_id: str,
    args: argparse.Namespace,
    cold: ColdStarts,
) -> list[Kill]:
    kills: list[Kill] = []
    disturbed = 0
    for what in schedule(args.kills, args.cold_starts):
        if what == "cold":
            await cold.measure()
            note(f"cold start {len(cold.answered)}: {cold.answered[-1]:.3f} s")
        else:
            server_id = f"{group_id}-s{len(kills) % args.replicas:02d}"
            try:
                kills.append(await kill_one(service, follower, watcher, group_id, server_id))
            except Disturbed as exc:
                disturbed += 1
                note(f"kill {len(kills) + 1} disturbed ({exc}); measuring it again")
                if disturbed > MAX_DISTURBED:
                    raise
                await until_full_health(service, group_id)
                continue
            describe(len(kills), kills[-1])
        await asyncio.sleep(SETTLE_S)
    return kills


def describe(number: int, kill: Kill) -> None:
    engine = f"{kill.engine_die_ms:.1f}" if kill.engine_die_ms is not None else "?"
    listener = f"{kill.listener_ms:.1f}" if kill.listener_ms is not None else "?"
    note(
        f"kill {number} ({kill.server_id}): (a) {kill.died_ms:.1f} ms [engine die {engine}"
        f" + listener {listener} + SSE {kill.delivery_ms:.1f}]; (b) {kill.visible_ms:.1f} ms"
        f" ({kill.seen}, {kill.polls} polls); (c) {kill.healthy_s:.3f} s [removed"
        f" {kill.removed_s:.3f}, created {kill.created_s:.3f}, started {kill.started_s:.3f}];"
        f" full health seen {kill.full_s:.3f} s"
    )


def report_log_anomalies(log: list[dict[str, Any]], after: int) -> None:
    """Events during the kills that a clean kill and replacement would not cause."""
    expected = {
        "ContainerDied",
        "ContainerRemoved",
        "ContainerCreated",
        "ContainerStarted",
        "ReplicaHealthChanged",
    }
    counts: dict[str, int] = {}
    for event in log:
        if event["position"] > after:
            counts[event["type"]] = counts.get(event["type"], 0) + 1
    note("events during the kills: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    unhealthy = [
        e
        for e in log
        if e["position"] > after
        and e["type"] == "ReplicaHealthChanged"
        and e["data"]["health"] != "healthy"
    ]
    for event in unhealthy:
        note(f"  unhealthy: {event['data']}")
    if others := set(counts) - expected:
        note(f"  unexpected kinds: {sorted(others)}")


# -- probe overhead ----------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proxies_cpu_s() -> dict[int, float]:
    """Every docker-proxy process's CPU: the probes reach the published ports through them."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if (entry / "comm").read_text().strip() == "docker-proxy":
                    found[int(entry.name)] = process_cpu_s(int(entry.name))
    return found


def machine_busy_s() -> float:
    """CPU time of the whole machine (all cores) not idle, in seconds."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


CGROUP_USAGE = (  # (path template, nanoseconds per unit, key in the file or None)
    ("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage", 1, None),
    ("/sys/fs/cgroup/cpu,cpuacct/docker/{id}/cpuacct.usage", 1, None),
    ("/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat", 1000, "usage_usec"),
    ("/sys/fs/cgroup/docker/{id}/cpu.stat", 1000, "usage_usec"),
)


def container_cpu_s(container_id: str) -> float | None:
    for template, unit_ns, key in CGROUP_USAGE:
        path = Path(template.format(id=container_id))
        with contextlib.suppress(OSError, ValueError, StopIteration):
            text = path.read_text()
            if key is None:
                return int(text.strip()) * unit_ns / 1e9
            line = next(x for x in text.splitlines() if x.startswith(key + " "))
            return int(line.split()[1]) * unit_ns / 1e9
    return None


@dataclass
class Window:
    seconds: float
    dtma_s: float  # CPU seconds of the dtma process
    proxies_s: float  # of the docker-proxy processes
    containers_s: float | None  # of the service's containers (cgroup), if readable
    machine_s: float  # of the whole machine
    events: int  # appended to the log during the window

    def percent(self, cpu_s: float) -> float:
        return 100 * cpu_s / self.seconds


async def snapshot(docker: DockerAdapter, owner: dict[str, str], pid: int) -> dict[str, Any]:
    ids = await docker.list_container_ids(owner)
    containers = [container_cpu_s(i) for i in ids]
    return {
        "at": time.perf_counter(),
        "dtma": process_cpu_s(pid),
        "proxies": proxies_cpu_s(),
        "containers": None if None in containers else dict(zip(ids, containers, strict=True)),
        "machine": machine_busy_s(),
    }


def window_of(before: dict[str, Any], after: dict[str, Any], events: int) -> Window:
    proxies = sum(after["proxies"][p] - before["proxies"][p] for p in before["proxies"])
    containers = None
    if before["containers"] is not None and after["containers"] is not None:
        shared = set(before["containers"]) & set(after["containers"])
        containers = sum(after["containers"][c] - before["containers"][c] for c in shared)
    return Window(
        seconds=after["at"] - before["at"],
        dtma_s=after["dtma"] - before["dtma"],
        proxies_s=proxies if set(before["proxies"]) <= set(after["proxies"]) else math.nan,
        containers_s=containers,
        machine_s=after["machine"] - before["machine"],
        events=events,
    )


async def probe_overhead(
    docker: DockerAdapter, image: str, replicas: int, seconds: float, check: dict[str, Any]
) -> Window:
    """A fresh service with `replicas` healthy, left alone for `seconds`: what it spent."""
    async with service_process(docker, f"failure-{check['type']}") as service:
        await deploy(service, image, split(replicas), check)
        await asyncio.sleep(OVERHEAD_SETTLE_S)
        head = (await service.get("/mcp-servers/status"))["position"]
        before = await snapshot(docker, service.owner, service.pid)
        await asyncio.sleep(seconds)  # nothing asks the service anything meanwhile
        after = await snapshot(docker, service.owner, service.pid)
        events = (await service.get("/mcp-servers/status"))["position"] - head
        return window_of(before, after, events)


# -- reporting ---------------------------------------------------------------------------------


def report_kills(kills: list[Kill], cold: ColdStarts) -> dict[str, float]:
    def stats(name: str, values: list[float], digits: int) -> float:
        median = statistics.median(values)
        metric(f"{name}_median", median, digits)
        metric(f"{name}_p95", p95(values), digits)
        return median

    cold_s = stats("cold_start_seconds", cold.answered, 3)
    metric("cold_start_docker_run_returned_seconds_median", statistics.median(cold.returned))
    figures = {
        "cold": cold_s,
        "a": stats("kill_to_death_event_ms", [k.died_ms for k in kills], 1),
        "b": stats("kill_to_death_visible_ms", [k.visible_ms for k in kills], 1),
        "c": stats("kill_to_replacement_healthy_seconds", [k.healthy_s for k in kills], 3),
    }
    metric("kill_to_full_health_seen_seconds_median", statistics.median(k.full_s for k in kills))
    for name, values in (
        ("kill_to_engine_die_ms", [k.engine_die_ms for k in kills]),
        ("engine_die_to_death_recorded_ms", [k.listener_ms for k in kills]),
    ):
        known = [v for v in values if v is not None]
        if known:
            metric(f"{name}_median", statistics.median(known), 1)
    metric("death_recorded_to_sse_ms_median", statistics.median(k.delivery_ms for k in kills), 1)
    steps: list[tuple[str, Callable[[Kill], float]]] = [
        ("kill_to_old_removed_seconds", lambda k: k.removed_s),
        ("kill_to_replacement_created_seconds", lambda k: k.created_s),
        ("kill_to_replacement_started_seconds", lambda k: k.started_s),
        ("replacement_started_to_healthy_seconds", lambda k: k.healthy_s - k.started_s),
    ]
    for name, pick in steps:
        metric(f"{name}_median", statistics.median(pick(k) for k in kills))
    return figures


def report_overhead(mcp: Window, none: Window, replicas: int) -> dict[str, float]:
    probes_per_s = replicas * 1000 / INTERVAL_MS
    for label, window in (("mcp", mcp), ("none", none)):
        metric(f"probe_overhead_dtma_cpu_percent_{label}", window.percent(window.dtma_s), 2)
        metric(f"probe_overhead_docker_proxy_cpu_percent_{label}", window.percent(window.proxies_s))
        if window.containers_s is not None:
            metric(
                f"probe_overhead_containers_cpu_percent_{label}",
                window.percent(window.containers_s),
                2,
            )
        metric(f"probe_overhead_machine_cpu_percent_{label}", window.percent(window.machine_s), 1)
        metric(f"probe_overhead_events_in_window_{label}", window.events, 0)
    difference = mcp.percent(mcp.dtma_s) - none.percent(none.dtma_s)
    per_probe_ms = 1000 * (mcp.dtma_s / mcp.seconds - none.dtma_s / none.seconds) / probes_per_s
    metric("probe_overhead_dtma_cpu_percent_difference", difference, 2)
    metric("probes_per_second", probes_per_s, 1)
    metric("probe_cpu_ms_per_probe", per_probe_ms, 3)
    if mcp.containers_s is not None and none.containers_s is not None:
        served = mcp.containers_s / mcp.seconds - none.containers_s / none.seconds
        metric("probe_container_cpu_ms_per_probe", 1000 * served / probes_per_s, 3)
    return {"mcp": mcp.percent(mcp.dtma_s), "none": none.percent(none.dtma_s), "each": per_probe_ms}


def summary(figures: dict[str, float], overhead: dict[str, float], kills: int) -> None:
    cold, a, b, c = figures["cold"], figures["a"], figures["b"], figures["c"]
    budget = cold + INTERVAL_MS / 1000

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(
        "\n".join(
            [
                f"# over {kills} docker kills (medians); cold start (docker run -d to MCP"
                f" answering) {cold:.3f} s",
                f"# (a) kill to ContainerDied on SSE: {a:.1f} ms (goal < 100 ms:"
                f" {verdict(a < 100)})",
                f"# (b) kill to death on GET /health/mcp/{{id}}: {b:.1f} ms (goal < 200 ms:"
                f" {verdict(b < 200)})",
                f"# (c) kill to replacement healthy: {c:.3f} s = {c / cold:.2f}x cold start,"
                f" {c / budget:.2f}x (cold start + {INTERVAL_MS} ms = {budget:.3f} s) (goal < 1:"
                f" {verdict(c < budget)})",
                f"# probe overhead: dtma {overhead['mcp']:.2f}% of a core with mcp probes every"
                f" {INTERVAL_MS} ms vs {overhead['none']:.2f}% without;"
                f" {overhead['each']:.3f} CPU ms per probe",
            ]
        ),
        flush=True,
    )


# -- driver ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def cold_starts(image: str) -> AsyncIterator[ColdStarts]:
    """The baseline's network and labels; whatever carries them is removed afterwards."""
    tag = f"{os.getpid()}-{secrets.token_hex(3)}"
    labels = {"dtma.bench": f"failure-cold-{tag}"}
    network = f"dtma-bench-cold-{tag}"
    await cli("network", "create", "--label", f"dtma.bench={labels['dtma.bench']}", network)
    try:
        async with aiohttp.ClientSession() as session:
            yield ColdStarts(session, image, network, labels)
    finally:
        _code, out, _err = await cli(
            "ps", "-aq", "--filter", f"label=dtma.bench={labels['dtma.bench']}", check=False
        )
        if out.split():
            await cli("rm", "-f", *out.split(), check=False)
        await cli("network", "rm", network, check=False)


async def main_async(args: argparse.Namespace) -> None:
    async with DockerAdapter() as docker:
        await docker.ping()
        image = await ensure_mcp_image(docker)
        note(f"image {image}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
        async with cold_starts(image) as cold:
            await cold.measure()  # untimed: the page cache warm for both sides
            cold.answered.clear()
            cold.returned.clear()
            kills = await kill_phase(docker, image, args, cold)
        figures = report_kills(kills, cold)
        windows = {}
        for check in (NONE_CHECK, MCP_CHECK):
            windows[check["type"]] = await probe_overhead(
                docker, image, args.replicas_overhead, args.window, check
            )
            note(f"overhead window ({check['type']}): {windows[check['type']]}")
        overhead = report_overhead(windows["mcp"], windows["none"], args.replicas_overhead)
    summary(figures, overhead, len(kills))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, help="docker kills (20; quick: 3)")
    parser.add_argument("--replicas", type=int, help="healthy replicas while killing (20)")
    parser.add_argument("--cold-starts", type=int, help="docker run baseline samples (5)")
    parser.add_argument("--replicas-overhead", type=int, help="replicas probed (50)")
    parser.add_argument("--window", type=float, help="CPU measuring window, seconds (20)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small numbers")
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.kills, args.replicas, args.cold_starts, args.replicas_overhead) < 1:
        parser.error("--kills, --replicas, --cold-starts, --replicas-overhead must be >= 1")
    if args.replicas > MAX_SERVERS or args.window <= 0:
        parser.error(f"--replicas <= {MAX_SERVERS} (one server each); --window > 0")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
