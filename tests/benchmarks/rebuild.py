"""`dtma rebuild` of a large SQLite log of the real MCP vocabulary, beside a decoded replay of it.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/rebuild.py [--n 1000000] [--keep PATH]

Builds a log of `--n` events (a fleet of groups and servers whose replicas are created,
started, probed, flap, die and are replaced, with the service's metadata), appended through
`EventStore.submit` and `events.CATALOGUE` as the service appends them; then times, in the same
run, `ProjectionRunner.rebuild` (what `dtma rebuild` runs: forget the snapshots, fold every event
into every projection, save the snapshots) and a decoded replay (pages of 1,000 through
`read_all`, every event through `events.CATALOGUE.decode`, nothing folded). Prints events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository

import migrations  # noqa: E402
from eventstore import EventStore, create_engine  # noqa: E402
from projections import ALL, ProjectionRunner, events, specs  # noqa: E402

GROUPS = 25
SERVERS_PER_GROUP = 4
REPLICAS = 2
FLAPS = 3  # probe verdicts flapping per container life, before it dies
WINDOW = 2_000  # appends in flight while building
PAGE = 1_000
Fact = tuple[str, events.Event]


def declarations(group: int) -> Iterator[Fact]:
    group_id = f"g{group:03d}"
    yield (
        f"group-{group_id}",
        events.GroupDeclared(
            group_id=group_id, name=f"team {group}", limits=specs.Limits(memory_mb=512)
        ),
    )
    for server in range(SERVERS_PER_GROUP):
        spec = specs.ServerSpec(
            id=f"{group_id}-s{server}",
            image=f"ghcr.io/example/mcp-{server}:1.{group}",
            env={"LOG_LEVEL": "info", "REGION": "eu-west-1"},
            replicas=REPLICAS,
            health_check=specs.HealthCheck(interval_ms=1_000),
        )
        yield f"group-{group_id}", events.ServerDeclared(group_id=group_id, spec=spec)
    yield (
        f"network-{group_id}",
        events.NetworkCreated(group_id=group_id, network=f"dtma-{group_id}", internal=False),
    )


def container_life(group_id: str, server_id: str, replica: int, generation: int) -> list[Fact]:
    """One container of a replica: created, started, healthy, flapping, dead, removed."""
    stream = f"server-{server_id}"
    container_id = uuid.uuid4().hex * 2
    facts: list[Fact] = [
        (
            stream,
            events.ContainerCreated(
                group_id=group_id,
                server_id=server_id,
                replica=replica,
                container_id=container_id,
                name=f"dtma-{group_id}-{server_id}-{replica}",
                generation=generation,
            ),
        ),
        (
            stream,
            events.ContainerStarted(
                server_id=server_id,
                replica=replica,
                container_id=container_id,
                host_port=32_768 + replica,
            ),
        ),
    ]
    for flap in range(FLAPS):
        for health in ("unhealthy", "healthy") if flap else ("healthy",):
            facts.append(
                (
                    stream,
                    events.ReplicaHealthChanged(
                        server_id=server_id,
                        replica=replica,
                        container_id=container_id,
                        health=health,
                        reason="probe timed out after 2000 ms" if health != "healthy" else None,
                        timed_out=health != "healthy",
                    ),
                )
            )
    if generation % 5 == 4:  # now and then the breaker opens and closes again
        for before, after in (("closed", "open"), ("open", "half_open"), ("half_open", "closed")):
            facts.append(
                (
                    f"breaker-{server_id}",
                    events.CircuitTransitioned(
                        server_id=server_id,
                        from_state=before,
                        to_state=after,
                        cause="failures" if after == "open" else "probe",
                        failures=5,
                        open_timeout_ms=30_000 if after == "open" else None,
                    ),
                )
            )
    facts.append(
        (
            stream,
            events.ContainerDied(
                server_id=server_id, replica=replica, container_id=container_id, exit_code=137
            ),
        )
    )
    facts.append(
        (
            stream,
            events.ContainerRemoved(
                server_id=server_id, replica=replica, container_id=container_id, reason="died"
            ),
        )
    )
    return facts


def workload(n: int) -> Iterator[Fact]:
    """`n` facts: the fleet declared, then container lives round robin over every replica."""
    count = 0
    for group in range(GROUPS):
        for fact in declarations(group):
            yield fact
            count += 1
    generation = 0
    while True:
        for group in range(GROUPS):
            for server in range(SERVERS_PER_GROUP):
                for replica in range(REPLICAS):
                    group_id = f"g{group:03d}"
                    for fact in container_life(
                        group_id, f"{group_id}-s{server}", replica, generation
                    ):
                        if count == n:
                            return
                        yield fact
                        count += 1
        generation += 1


def metadata(position_hint: int) -> dict[str, str]:
    """What the reconciler's appends carry (service.causation)."""
    return {
        "actor": "system",
        "component": "reconciler",
        "correlation_id": str(uuid.uuid4()),
        "causation_id": str(position_hint),
    }


async def build(store: EventStore, n: int) -> float:
    """Append `n` events one per append, `WINDOW` appends in flight (group commit)."""
    started = time.perf_counter()
    in_flight = []
    for index, (stream, event) in enumerate(workload(n)):
        new_event = events.CATALOGUE.to_new_event(event)
        in_flight.append(store.submit(stream, [new_event], None, metadata=metadata(index)))
        if len(in_flight) == WINDOW:
            await asyncio.gather(*in_flight)
            in_flight.clear()
    await asyncio.gather(*in_flight)
    return time.perf_counter() - started


async def rebuild(store: EventStore) -> tuple[float, int]:
    """What `dtma rebuild` does (service/cli.py), without its progress line."""
    runner = ProjectionRunner(store, events.CATALOGUE, ALL)
    started = time.perf_counter()
    await runner.rebuild()
    return time.perf_counter() - started, runner.position


async def replay(store: EventStore) -> tuple[float, int]:
    started = time.perf_counter()
    count = 0
    position = 0
    while page := await store.read_all(position, PAGE):
        for recorded in page:
            events.CATALOGUE.decode(recorded)
        count += len(page)
        position = page[-1].position
    return time.perf_counter() - started, count


async def measure(path: Path, n: int) -> None:
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    await migrations.upgrade(engine)
    store = await EventStore.open(url, engine=engine)
    try:
        seconds = await build(store, n)
        print(f"# built {n} events in {seconds:.1f}s ({n / seconds:.0f}/s)", file=sys.stderr)
        rebuild_seconds, position = await rebuild(store)
        replay_seconds, count = await replay(store)
    finally:
        await store.close()
    if position != n or count != n:
        raise AssertionError(f"rebuild folded to {position}, replay read {count}, expected {n}")
    print(f"rebuild_events_per_sec: {n / rebuild_seconds:.1f}")
    print(f"replay_decoded_events_per_sec: {n / replay_seconds:.1f}")
    print(f"rebuild_over_replay: {replay_seconds / rebuild_seconds:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="events in the log")
    parser.add_argument("--keep", type=Path, help="build the log at this path and keep it")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be positive")
    if args.keep is not None:
        asyncio.run(measure(args.keep, args.n))
        return
    with tempfile.TemporaryDirectory(prefix="dtma-bench-rebuild-") as directory:
        asyncio.run(measure(Path(directory, "events.db"), args.n))


if __name__ == "__main__":
    main()
