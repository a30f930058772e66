"""Deploy latency of DTMA against plain `docker run`, and kill-to-death-event latency.

    .venv/bin/python tests/benchmarks/deploy.py [--runs 3] [--servers 10] [--kills 20]
        [--adapter-kills 10] [--profile]

Per run: (a) a fresh in-process service (aiohttp on 127.0.0.1, a free port, a temporary SQLite
file, owner labels of its own, the default reconcile interval) deploys N single-replica servers
of the MCP test image in one group; timed from the POST until `GET /mcp-servers/status`, polled
every 20 ms, reports all N "running". (b) the same N containers started by `docker run -d` in
parallel from bash on a bridge network created beforehand; timed from the start of bash until
`docker inspect` shows all N running. Both mean Docker's "running" state: DTMA records
ContainerStarted once the engine's start call returned (and an inspect read the port). The order
of (a) and (b) alternates between runs; everything is removed after each run.

Then (c), once: a service with N servers deployed; replicas are killed one at a time (round
robin over the servers, with `docker kill` from the CLI and, interleaved, through the adapter's
`kill_container`), timed from just before the kill until the ContainerDied event for that
container arrives on `GET /events/stream` (SSE); before the next kill the reconciler must have
replaced the replica (its ContainerStarted arrives).

Prints `metric: value` lines on stdout, then a short summary; notes go to stderr. Run this
file as a script (the repository root is put on sys.path for `tests.support`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.support

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import AsyncIterator, Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from service import errors  # noqa: E402
from service.api.keys import docker_key, store_key  # noqa: E402
from service.app import create_app  # noqa: E402
from service.docker.adapter import ContainerSpec, DockerAdapter  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.benchmarks.service_harness import (  # noqa: E402
    AUTH,
    MEMORY_MB,
    PIDS,
    TOKEN,
    DieWatcher,
    Disturbed,
    EventFollower,
    Service,
    cli,
    metric,
    note,
    p95,
    run_flags,
    sweep,
    wall_ns,
)
from tests.support.docker import ping, remove_containers  # noqa: E402
from tests.support.mcp_image import CONTAINER_PORT, ensure_mcp_image  # noqa: E402

POLL_S = 0.02  # status / docker inspect polling
SETTLE_S = 1.0  # quiet time after a service starts, after a cleanup, after a replacement
DEPLOY_TIMEOUT_S = 120.0
KILL_TIMEOUT_S = 30.0
REPLACE_TIMEOUT_S = 180.0
RUN_PREFIX = "dtma-benchrun"  # the baseline's container and network names
ATTEMPTS = 3  # per deploy measurement, when something outside the benchmark disturbed it
MAX_DISTURBED_KILLS = 10


# -- the service, in process -------------------------------------------------------------------


@dataclass
class InProcessService(Service):
    app: web.Application


@contextlib.asynccontextmanager
async def running_service(docker: DockerAdapter, tag: str) -> AsyncIterator[InProcessService]:
    """A fresh service; afterwards it is stopped and whatever carries its labels is removed."""
    owner = {"dtma.bench": f"deploy-{os.getpid()}-{tag}-{secrets.token_hex(3)}"}
    with tempfile.TemporaryDirectory(prefix="dtma-bench-deploy-") as directory:
        settings = Settings(  # reconcile_interval_s: the default
            auth_token=TOKEN,
            database_url=f"sqlite:///{Path(directory, 'dtma.db')}",
            owner_labels=owner,
        )
        runner = web.AppRunner(create_app(settings), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            async with aiohttp.ClientSession(
                base_url=f"http://127.0.0.1:{port}", headers=AUTH
            ) as session:
                service = InProcessService(session, owner, runner.app)
                await service.get("/healthz")
                await asyncio.sleep(SETTLE_S)  # the reconciler's first (empty) pass
                yield service
        finally:
            await runner.cleanup()
            await sweep(docker, owner)


def deploy_body(group_id: str, image: str, servers: int) -> dict[str, Any]:
    return {
        "groupId": group_id,
        "resourceLimits": {"memoryMb": MEMORY_MB},
        "mcpServers": [{"id": f"{group_id}-s{i:02d}", "image": image} for i in range(servers)],
    }


async def until_all_running(
    service: Service, group_id: str, servers: int, position: int
) -> tuple[float, int]:
    """Poll the status every POLL_S until the group's servers all run; (perf time, polls)."""
    polls = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEPLOY_TIMEOUT_S
    while True:
        status = await service.get(f"/mcp-servers/status?minPosition={position}")
        polls += 1
        ours = [s for s in status["mcpServers"] if s["groupId"] == group_id]
        if len(ours) == servers and all(s["status"] == "running" for s in ours):
            return time.perf_counter(), polls
        if failed := [s for s in ours if s["status"] == "failed"]:
            raise Disturbed(f"a server failed to start: {failed[0]}")
        if loop.time() > deadline:
            raise Disturbed(f"not all running after {DEPLOY_TIMEOUT_S:g} s: {ours}")
        await asyncio.sleep(POLL_S)


# -- (a) ours ----------------------------------------------------------------------------------


@dataclass
class Trace:
    """What the reconciler spent its time on: adapter calls and appends, from the POST on."""

    origin: float = 0.0
    calls: list[tuple[str, float, float, str]] = field(default_factory=list)

    def wrap(self, target: Any, name: str, describe: Callable[..., str] = lambda *a: "") -> None:
        method = getattr(target, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                self.calls.append((name, started, ended, describe(*args, **kwargs)))

        setattr(target, name, timed)  # an instance attribute: the reconciler finds it first

    def install(self, app: web.Application) -> None:
        docker = app[docker_key]
        for name in ("list_managed", "list_container_ids", "list_managed_networks"):
            self.wrap(docker, name)
        self.wrap(docker, "ensure_network", lambda name, *a, **k: name)
        self.wrap(docker, "create_container", lambda spec: spec.name)
        self.wrap(docker, "start_container", lambda cid: cid[:12])
        self.wrap(docker, "inspect_container", lambda cid: cid[:12])
        self.wrap(docker, "kill_container", lambda cid, *a, **k: cid[:12])
        store = app[store_key]
        self.wrap(store, "append", lambda stream, events, *a, **k: stream)
        self.wrap(store, "head")
        self.wrap(store, "save_checkpoint", lambda name, *a, **k: name)

    def report(self, until: float, title: str = "between the POST and all running") -> None:
        window = [c for c in self.calls if c[1] >= self.origin and c[1] <= until]
        note(f"profile: {len(window)} timed calls {title}")
        for name, started, ended, what in sorted(window, key=lambda c: c[1]):
            note(
                f"  {1000 * (started - self.origin):8.1f} ms  +{1000 * (ended - started):6.1f} ms"
                f"  {name} {what}"
            )
        totals: dict[str, list[float]] = {}
        for name, started, ended, _what in window:
            totals.setdefault(name, []).append(ended - started)
        note("profile totals (nested calls are also inside their callers):")
        for name, spans in sorted(totals.items(), key=lambda kv: -sum(kv[1])):
            note(
                f"  {name:<22} {len(spans):3d} calls  {1000 * sum(spans):8.1f} ms total"
                f"  {1000 * statistics.median(spans):6.1f} ms median"
            )


STARTING = ("ContainerCreated", "ContainerStarted")


def log_breakdown(
    log: list[dict[str, Any]], position: int, posted_ns: int, done_ns: int, servers: int
) -> dict[str, float]:
    """Milliseconds from the deploy's recording to the reconciler's events, from the log."""
    declared = next(e for e in log if e["position"] == position)
    origin = wall_ns(declared["recordedAt"])
    after = [e for e in log if e["position"] > position]
    foreign = [e for e in after if e["type"] not in ("NetworkCreated", *STARTING)]
    if foreign:
        first = foreign[0]
        raise Disturbed(f"{first['type']} {first['data']} during the deploy")
    by_container: dict[str, dict[str, int]] = {}
    for e in after:
        if e["type"] in STARTING:
            by_container.setdefault(e["data"]["container_id"], {})[e["type"]] = wall_ns(
                e["recordedAt"]
            )
    pairs = [(c["ContainerCreated"], c["ContainerStarted"]) for c in by_container.values()]
    if len(pairs) != servers or any(len(c) != 2 for c in by_container.values()):
        raise AssertionError(f"expected {servers} containers created and started: {by_container}")
    created, started = sorted(c for c, _s in pairs), sorted(s for _c, s in pairs)
    network = [wall_ns(e["recordedAt"]) for e in after if e["type"] == "NetworkCreated"]
    ms = 1e-6
    spans = [s - c for c, s in pairs]
    gaps = [c - s for s, c in zip(started, created[1:], strict=False)]
    return {
        "post_to_recorded": (origin - posted_ns) * ms,
        "to_network_created": ((network[0] if network else origin) - origin) * ms,
        "to_first_created": (created[0] - origin) * ms,
        "to_last_started": (started[-1] - origin) * ms,
        "created_to_started_median": statistics.median(spans) * ms,
        "started_to_next_created_median": statistics.median(gaps) * ms if gaps else 0.0,
        "last_started_to_seen": (done_ns - started[-1]) * ms,
    }


async def deploy_ours(
    docker: DockerAdapter, image: str, servers: int, profile: bool
) -> tuple[float, dict[str, float]]:
    async with running_service(docker, "deploy") as service:
        group_id = f"b{secrets.token_hex(3)}"
        trace = Trace()
        if profile:
            trace.install(service.app)
        posted_ns = time.time_ns()
        trace.origin = started = time.perf_counter()
        accepted = await service.post("/mcp-servers/deploy", deploy_body(group_id, image, servers))
        done, polls = await until_all_running(service, group_id, servers, accepted["position"])
        done_ns = time.time_ns()
        elapsed = done - started
        breakdown = log_breakdown(
            await service.log(), accepted["position"], posted_ns, done_ns, servers
        )
        breakdown["polls"] = polls
        if profile:
            trace.report(done)
    return elapsed, breakdown


# -- (b) the baseline: docker run from a shell -------------------------------------------------


def docker_run_script(prefix: str, network: str, image: str, servers: int) -> str:
    """Bash: `docker run -d` of every container in the background, then `wait`."""
    runs = []
    for i in range(servers):
        flags = run_flags(f"{prefix}-{i:02d}", network, f"s{i:02d}", f"127.0.0.1::{CONTAINER_PORT}")
        runs.append(f"docker run -d {shlex.join(flags)} {shlex.quote(image)} >/dev/null &")
    return "\n".join([*runs, "wait"])


async def all_running(names: list[str]) -> bool:
    code, out, _err = await cli("inspect", "--format", "{{.State.Running}}", *names, check=False)
    states = out.split()
    if code != 0 or len(states) != len(names):
        raise RuntimeError(f"docker inspect: not all of {len(names)} containers exist")
    return all(state == "true" for state in states)


async def deploy_docker_run(image: str, servers: int) -> tuple[float, float]:
    """Seconds until all run, and until the shell's `wait` returned."""
    prefix = f"{RUN_PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
    network = f"{prefix}-net"
    names = [f"{prefix}-{i:02d}" for i in range(servers)]
    await cli("network", "create", "--driver", "bridge", network)
    try:
        script = docker_run_script(prefix, network, image, servers)
        started = time.perf_counter()
        shell = await asyncio.create_subprocess_exec("bash", "-c", script)
        await shell.wait()
        shell_done = time.perf_counter() - started
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEPLOY_TIMEOUT_S
        while not await all_running(names):
            if loop.time() > deadline:
                raise TimeoutError("docker run: not all running")
            await asyncio.sleep(POLL_S)
        return time.perf_counter() - started, shell_done
    finally:
        await remove_by_prefix(prefix, network)


async def remove_by_prefix(prefix: str, network: str) -> None:
    _code, out, _err = await cli(
        "ps", "-a", "--filter", f"name={prefix}-", "--format", "{{.Names}}"
    )
    names = [name for name in out.split() if name.startswith(prefix + "-")]
    if names:
        await cli("rm", "-f", *names)
    await cli("network", "rm", network, check=False)


# -- (c) kill to death event -------------------------------------------------------------------


@dataclass
class Kill:
    how: str  # "cli" or "adapter"
    to_event_ms: float  # from just before the kill to the ContainerDied's arrival on SSE
    call_ms: float  # until the CLI process exited / the adapter call returned
    engine_die_ms: float | None  # to the die event's time on the engine's clock
    watcher_ms: float | None  # engine die time to its arrival at a client of our own
    listener_ms: float | None  # engine die time to the ContainerDied's recordedAt
    delivery_ms: float  # recordedAt to arrival on SSE
    replaced_s: float  # from the kill to the replacement's ContainerStarted arriving
    started_at: float  # perf_counter() just before the kill
    died_at: float  # perf_counter() at the ContainerDied's arrival


def kill_order(cli_kills: int, adapter_kills: int) -> list[str]:
    """Both kinds spread evenly over the sequence."""
    keyed = [((i + 0.5) / cli_kills, "cli") for i in range(cli_kills)]
    keyed += [((i + 0.5) / adapter_kills, "adapter") for i in range(adapter_kills)]
    return [how for _key, how in sorted(keyed)]


async def kill_latency(
    docker: DockerAdapter,
    image: str,
    servers: int,
    cli_kills: int,
    adapter_kills: int,
    profile: bool,
) -> list[Kill]:
    killer = DockerAdapter()  # the adapter kills come from a client of their own
    watcher = DieWatcher()
    try:
        await ping(killer)
        async with running_service(docker, "kill") as service:
            group_id = f"k{secrets.token_hex(3)}"
            accepted = await service.post(
                "/mcp-servers/deploy", deploy_body(group_id, image, servers)
            )
            await until_all_running(service, group_id, servers, accepted["position"])
            await asyncio.sleep(SETTLE_S)
            trace = Trace()
            if profile:
                trace.install(service.app)
            head = (await service.get("/mcp-servers/status"))["position"]
            follower = EventFollower(service, head)
            try:
                kills: list[Kill] = []
                disturbed = 0
                for number, how in enumerate(kill_order(cli_kills, adapter_kills)):
                    server_id = f"{group_id}-s{number % servers:02d}"
                    while True:
                        try:
                            kill = await kill_one(
                                service, follower, watcher, killer, server_id, how
                            )
                            break
                        except Disturbed as exc:
                            disturbed += 1
                            note(f"kill {number + 1} disturbed ({exc}); measuring it again")
                            if disturbed > MAX_DISTURBED_KILLS:
                                raise
                    kills.append(kill)
                    if profile and number < 3:
                        trace.origin = kill.started_at
                        trace.report(kill.died_at, f"from kill {number + 1} ({how}) to its death")
                    await asyncio.sleep(SETTLE_S)
                if disturbed:
                    note(f"{disturbed} kills were disturbed from outside and measured again")
                return kills
            finally:
                await follower.close()
    finally:
        await watcher.close()
        await killer.close()


async def kill_one(
    service: Service,
    follower: EventFollower,
    watcher: DieWatcher,
    killer: DockerAdapter,
    server_id: str,
    how: str,
) -> Kill:
    container_id = await running_container(service, server_id)
    start_index = len(follower.events)
    started_ns = time.time_ns()
    started = time.perf_counter()
    if how == "cli":
        process = await asyncio.create_subprocess_exec(
            "docker", "kill", container_id, stdout=asyncio.subprocess.DEVNULL
        )
        if await process.wait() != 0:
            raise Disturbed(f"docker kill {container_id[:12]} failed")
    else:
        try:
            await killer.kill_container(container_id)
        except errors.ServiceError as exc:
            raise Disturbed(exc.message) from exc
    returned = time.perf_counter()

    def died(event: dict[str, Any]) -> bool:
        data = event["data"]
        return bool(event["type"] == "ContainerDied" and data["container_id"] == container_id)

    def replaced(event: dict[str, Any]) -> bool:
        data = event["data"]
        return bool(
            event["type"] == "ContainerStarted"
            and data["server_id"] == server_id
            and data["container_id"] != container_id
        )

    try:
        index, arrival, arrival_ns, event = await follower.wait_for(
            died, start_index, KILL_TIMEOUT_S
        )
        _index, replaced_at, _ns, _event = await follower.wait_for(
            replaced, index + 1, REPLACE_TIMEOUT_S
        )
    except TimeoutError as exc:
        raise Disturbed(f"no ContainerDied or no replacement for {container_id[:12]}") from exc
    recorded_ns = wall_ns(event["recordedAt"])
    engine = watcher.died.get(container_id)
    if engine is not None and engine[0] < started_ns:
        raise Disturbed(f"{container_id[:12]} died before the kill")
    return Kill(
        how=how,
        to_event_ms=1000 * (arrival - started),
        call_ms=1000 * (returned - started),
        engine_die_ms=(engine[0] - started_ns) / 1e6 if engine else None,
        watcher_ms=(engine[1] - engine[0]) / 1e6 if engine else None,
        listener_ms=(recorded_ns - engine[0]) / 1e6 if engine else None,
        delivery_ms=(arrival_ns - recorded_ns) / 1e6,
        replaced_s=replaced_at - started,
        started_at=started,
        died_at=arrival,
    )


async def running_container(service: Service, server_id: str) -> str:
    """The id of the server's one replica once it runs (after a disturbance it may not yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLACE_TIMEOUT_S
    while True:
        instances = (await service.get(f"/mcp-servers/{server_id}"))["instances"]
        if len(instances) == 1 and instances[0]["state"] == "running":
            return str(instances[0]["containerId"])
        if loop.time() > deadline:
            raise RuntimeError(f"{server_id} does not run again: {instances}")
        await asyncio.sleep(0.1)


def report_kills(kills: list[Kill]) -> None:
    for kill in kills:
        die_at = f"{kill.engine_die_ms:6.1f}" if kill.engine_die_ms is not None else "     ?"
        handled = f"{kill.listener_ms:6.1f}" if kill.listener_ms is not None else "     ?"
        seen = f"{kill.watcher_ms:5.1f}" if kill.watcher_ms is not None else "    ?"
        note(
            f"kill ({kill.how:>7}): {kill.to_event_ms:6.1f} ms to ContainerDied on SSE"
            f" = engine die at {die_at} ms (the kill returned at {kill.call_ms:6.1f} ms)"
            f" + listener {handled} ms (die seen by a bare events client after {seen} ms)"
            f" + SSE {kill.delivery_ms:4.1f} ms;"
            f" replaced after {kill.replaced_s:5.2f} s"
        )
    for how, prefix in (("cli", "kill"), ("adapter", "adapter_kill")):
        chosen = [k for k in kills if k.how == how]
        if not chosen:
            continue
        latencies = [k.to_event_ms for k in chosen]
        metric(f"{prefix}_to_death_event_ms_median", statistics.median(latencies), 1)
        metric(f"{prefix}_to_death_event_ms_p95", p95(latencies), 1)
        floor = [
            k.engine_die_ms + k.watcher_ms
            for k in chosen
            if k.engine_die_ms is not None and k.watcher_ms is not None
        ]
        if floor:  # the same kill seen by a bare Docker events client: what Docker itself takes
            metric(f"{prefix}_to_docker_die_event_ms_median", statistics.median(floor), 1)
        engine = [k.engine_die_ms for k in chosen if k.engine_die_ms is not None]
        listener = [k.listener_ms for k in chosen if k.listener_ms is not None]
        if engine and listener:
            note(
                f"{how} kills (n={len(chosen)}), medians: engine die"
                f" {statistics.median(engine):.1f} ms after the kill began; the ContainerDied"
                f" recorded {statistics.median(listener):.1f} ms after that; on SSE"
                f" {statistics.median([k.delivery_ms for k in chosen]):.1f} ms after that"
            )
    metric(
        "kill_to_replacement_running_seconds_median",
        statistics.median(k.replaced_s for k in kills),
        2,
    )


# -- profile: the adapter alone, sequential against concurrent ---------------------------------


async def adapter_starts(
    docker: DockerAdapter, image: str, servers: int, concurrent: bool
) -> float:
    """create + start of `servers` containers through the adapter, no store: seconds."""
    tag = secrets.token_hex(3)
    labels = {"dtma.bench": f"adapter-{os.getpid()}-{tag}"}
    network = f"{RUN_PREFIX}-{os.getpid()}-{tag}-net"
    await docker.ensure_network(network, labels)

    async def one(i: int) -> None:
        spec = ContainerSpec(
            name=f"{RUN_PREFIX}-{os.getpid()}-{tag}-{i:02d}",
            image=image,
            labels=labels,
            network=network,
            aliases=[f"s{i:02d}"],
            container_port=CONTAINER_PORT,
            memory_mb=MEMORY_MB,
            pids=PIDS,
        )
        await docker.start_container(await docker.create_container(spec))

    try:
        started = time.perf_counter()
        if concurrent:
            await asyncio.gather(*(one(i) for i in range(servers)))
        else:
            for i in range(servers):
                await one(i)
        return time.perf_counter() - started
    finally:
        await remove_containers(docker, labels)
        await docker.remove_network(network)


# -- driver ------------------------------------------------------------------------------------


async def warm_up(image: str) -> None:
    """One untimed container of the image, so that neither side pays for a cold page cache."""
    _code, out, _err = await cli("run", "-d", "--pids-limit", str(PIDS), image)
    await cli("rm", "-f", out.strip())


async def main_async(args: argparse.Namespace) -> None:
    async with DockerAdapter() as docker:
        await ping(docker)
        image = await ensure_mcp_image(docker)
        note(f"image {image}; {args.servers} servers; {os.cpu_count()} CPUs")
        await warm_up(image)
        ours: list[float] = []
        theirs: list[float] = []
        ratios: list[float] = []
        for run in range(args.runs):
            order = ("ours", "docker") if run % 2 == 0 else ("docker", "ours")
            for side in order:
                if side == "ours":
                    for attempt in range(ATTEMPTS):
                        try:
                            seconds, breakdown = await deploy_ours(
                                docker, image, args.servers, args.profile and run == 0
                            )
                            break
                        except Disturbed as exc:
                            if attempt == ATTEMPTS - 1:
                                raise
                            note(f"run {run + 1} ours disturbed ({exc}); measuring it again")
                            await asyncio.sleep(SETTLE_S)
                    ours.append(seconds)
                    note(
                        f"run {run + 1} ours: {seconds:.3f} s (load {os.getloadavg()[0]:.2f});"
                        " from the log (ms after the deploy was recorded): "
                        + ", ".join(f"{k} {v:.1f}" for k, v in breakdown.items())
                    )
                else:
                    seconds, shell = await deploy_docker_run(image, args.servers)
                    theirs.append(seconds)
                    note(
                        f"run {run + 1} docker run: {seconds:.3f} s (bash returned at"
                        f" {shell:.3f}; load {os.getloadavg()[0]:.2f})"
                    )
                await asyncio.sleep(SETTLE_S)
            ratios.append(ours[-1] / theirs[-1])
            note(f"run {run + 1} ratio: {ratios[-1]:.2f}")
        n = args.servers
        metric(f"deploy_{n}_seconds", statistics.median(ours))
        metric(f"docker_run_{n}_seconds", statistics.median(theirs))
        metric("deploy_ratio", statistics.median(ratios), 2)
        if args.profile:
            for concurrent in (False, True):
                seconds = await adapter_starts(docker, image, n, concurrent)
                kind = "concurrent" if concurrent else "sequential"
                metric(f"adapter_{kind}_create_start_{n}_seconds", seconds)
                await asyncio.sleep(SETTLE_S)
        kills: list[Kill] = []
        if args.kills or args.adapter_kills:
            kills = await kill_latency(
                docker, image, n, args.kills, args.adapter_kills, args.profile
            )
            report_kills(kills)
    summary = [
        f"# deploy of {n}: ours {statistics.median(ours):.2f} s, docker run"
        f" {statistics.median(theirs):.2f} s, ratio {statistics.median(ratios):.2f}"
        f" (per run: {', '.join(f'{r:.2f}' for r in ratios)}; goal <= 1.3:"
        f" {'met' if statistics.median(ratios) <= 1.3 else 'NOT met'})"
    ]
    cli_kills = [k.to_event_ms for k in kills if k.how == "cli"]
    if cli_kills:
        median = statistics.median(cli_kills)
        summary.append(
            f"# docker kill to ContainerDied: median {median:.1f} ms, p95 {p95(cli_kills):.1f} ms"
            f" over {len(cli_kills)} kills (goal: median < 100 ms:"
            f" {'met' if median < 100 else 'NOT met'})"
        )
    print("\n".join(summary), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="deploy runs (ours and docker run)")
    parser.add_argument("--servers", type=int, default=10, help="servers per deploy (<= 50)")
    parser.add_argument("--kills", type=int, default=20, help="docker kill (CLI) samples")
    parser.add_argument("--adapter-kills", type=int, default=10, help="kill_container samples")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="time the service's calls: run 1's deploy, the first 3 kills; adapter alone",
    )
    args = parser.parse_args()
    if args.runs < 1 or not 1 <= args.servers <= 50 or args.kills < 0 or args.adapter_kills < 0:
        parser.error("--runs >= 1, 1 <= --servers <= 50, kills >= 0")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
