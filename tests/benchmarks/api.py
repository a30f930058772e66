"""HTTP throughput of DTMA's API against a bare aiohttp hello-world on the same machine.

    .venv/bin/python tests/benchmarks/api.py [--servers 50] [--replicas 1] [--connections 32]
        [--duration 10] [--rounds 2] [--quick]

DTMA runs as `dtma serve` (a free port, a temporary SQLite file, owner labels of its own) with
`--servers` MCP servers of the test image deployed in one group, every replica healthy and probed
(`type: mcp` every 5 s) while it is measured. The baseline is a bare aiohttp app answering
`GET /` with "Hello, world", served by `web.run_app` from this same interpreter.

The load generator is `wrk` (the Debian package), one thread, `--connections` connections, for
`--duration` seconds per measurement, after a 2 s warm-up of the same kind. Measured, in rounds
(baseline, read, command, in that order, `--rounds` times, so that drift on a shared machine
lands on both sides):
- hello-world `GET /`: the baseline rps and p99;
- `GET /mcp-servers/status` with the bearer token: the read;
- `POST /health/circuit-breaker` `{"failureThreshold": 1000}`: a cheap command; every request
  appends one event to the log (an fsync'd SQLite commit, shared by concurrent requests).

Prints `metric: value` lines (rps and p99 in ms, per kind, the median over rounds), then the
ratios against the baseline. Goal: reads at >= 0.5 of the baseline rps.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.*

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import aiohttp  # noqa: E402

from service.docker.adapter import DockerAdapter  # noqa: E402
from tests.benchmarks.service_harness import (  # noqa: E402
    MEMORY_MB,
    TOKEN,
    Service,
    metric,
    note,
    service_process,
    stop,
)
from tests.support.docker import ping  # noqa: E402
from tests.support.mcp_image import ensure_mcp_image  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

READ_GOAL = 0.5
WARMUP_S = 2
HEALTHY_TIMEOUT_S = 300.0
COMMAND_BODY = {"failureThreshold": 1000}
HELLO_WORLD = """
import sys
from aiohttp import web

async def hello(request):
    return web.Response(text="Hello, world")

app = web.Application()
app.router.add_get("/", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
WRK_POST = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Load:
    rps: float
    p99_ms: float
    non_2xx: int


# -- wrk ---------------------------------------------------------------------------------------


async def wrk(url: str, args: argparse.Namespace, script: Path | None, duration: int) -> Load:
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{duration}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    else:
        command += ["-H", f"Authorization: Bearer {TOKEN}"]
    process = await asyncio.create_subprocess_exec(
        *command, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output = (await process.communicate())[0].decode()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{output}")
    return parse_wrk(output)


def parse_wrk(output: str) -> Load:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if rps is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return Load(
        rps=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * UNITS_MS[p99.group(2)],
        non_2xx=int(errors.group(1)) if errors else 0,
    )


async def measure(url: str, args: argparse.Namespace, script: Path | None = None) -> Load:
    await wrk(url, args, script, WARMUP_S)
    load = await wrk(url, args, script, args.duration)
    if load.non_2xx:
        raise RuntimeError(f"{url}: {load.non_2xx} answers were not 2xx")
    return load


# -- the two servers ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def hello_world() -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HELLO_WORLD, str(port), stdin=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        await until_answering(url)
        yield url
    finally:
        await stop(process)


async def until_answering(url: str) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(30):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)


async def deploy(service: Service, image: str, args: argparse.Namespace) -> None:
    group_id = f"api{secrets.token_hex(3)}"
    servers = [
        {"id": f"{group_id}-s{i:02d}", "image": image, "replicas": args.replicas}
        for i in range(args.servers)
    ]
    body = {"groupId": group_id, "resourceLimits": {"memoryMb": MEMORY_MB}, "mcpServers": servers}
    await service.post("/mcp-servers/deploy", body)
    async with asyncio.timeout(HEALTHY_TIMEOUT_S):
        while True:
            status = (await service.get("/mcp-servers/status"))["mcpServers"]
            if len(status) == args.servers and all(
                s["healthyReplicas"] >= s["desiredReplicas"] for s in status
            ):
                note(f"{args.servers} servers x {args.replicas} replicas healthy")
                return
            await asyncio.sleep(0.5)


# -- rounds and the report ---------------------------------------------------------------------


async def rounds(service: Service, hello: str, args: argparse.Namespace) -> dict[str, list[Load]]:
    base = str(service.session._base_url).rstrip("/")  # aiohttp has no public accessor
    results: dict[str, list[Load]] = {"hello_world": [], "status_read": [], "command": []}
    with tempfile.TemporaryDirectory(prefix="dtma-bench-api-") as name:
        script = Path(name) / "post.lua"
        script.write_text(WRK_POST.format(body=json.dumps(COMMAND_BODY), token=TOKEN))
        for number in range(args.rounds):
            note(f"round {number + 1} of {args.rounds}; load {os.getloadavg()[0]:.2f}")
            results["hello_world"].append(await measure(hello, args))
            results["status_read"].append(await measure(f"{base}/mcp-servers/status", args))
            command_url = f"{base}/health/circuit-breaker"
            results["command"].append(await measure(command_url, args, script))
    return results


def report(results: dict[str, list[Load]]) -> None:
    medians = {
        kind: (
            statistics.median(load.rps for load in loads),
            statistics.median(load.p99_ms for load in loads),
        )
        for kind, loads in results.items()
    }
    for kind, (rps, p99) in medians.items():
        metric(f"{kind}_rps", rps, 1)
        metric(f"{kind}_p99_ms", p99, 2)
    baseline_rps, baseline_p99 = medians["hello_world"]
    for kind in ("status_read", "command"):
        rps, p99 = medians[kind]
        metric(f"{kind}_rps_ratio", rps / baseline_rps)
        metric(f"{kind}_p99_ratio", p99 / baseline_p99)
    read_ratio = medians["status_read"][0] / baseline_rps
    verdict = "met" if read_ratio >= READ_GOAL else "NOT met"
    print(f"# reads / hello-world rps: {read_ratio:.2f} (goal >= {READ_GOAL}: {verdict})")
    print(f"# command / hello-world rps: {medians['command'][0] / baseline_rps:.2f}")


async def main_async(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("api.py needs wrk: apt-get install wrk")
    async with DockerAdapter() as docker:
        await ping(docker)
        image = await ensure_mcp_image(docker)
        note(f"image {image}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
        async with service_process(docker, "api") as service, hello_world() as hello:
            await deploy(service, image, args)
            report(await rounds(service, hello, args))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5 servers, 3 s, one round")
    args = parser.parse_args()
    if args.quick:
        args.servers, args.duration, args.rounds = 5, 3, 1
    return args


if __name__ == "__main__":
    asyncio.run(main_async(parse_args()))
