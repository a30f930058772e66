"""The benchmark workload, shared by ours (store.py) and the peer (peer_eventsourcing.py).

Imports only the standard library and pydantic, so that the peer's venv (which has no DTMA)
can import it too: both scripts put this directory first on sys.path by being run as files.

N events over 1,000 streams. Each event is a `BenchEvent`; its canonical JSON is 71-82 bytes
(measured: 77.6 on average for N=20,000), and the stored event, counting data + metadata `{}`
+ type `BenchEvent` + stream id (`tool-` and a UUID, 41 characters), is 124-135 bytes (measured:
130.6 on average; `stored_size()` recomputes it, and store.py measures it in the database).
Ours also stores a position, a version, a 27-character time and the 64-character chain hash;
the peer a version and a notification id.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

STREAMS = 1_000
BATCH = 100
WRITERS = 64
PAGE = 1_000
TYPE_NAME = "BenchEvent"
TOOLS = ("github", "postgres", "slack", "filesystem", "browser", "jira", "sentry")
STATUSES = ("healthy", "degraded", "starting")


class BenchEvent(BaseModel):
    """A small health-probe event; both sides decode every stored event into it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    replica: int
    status: str
    latency_ms: int
    seq: int


def canonical_json(value: Any) -> str:
    """The spelling DTMA stores (sorted keys, no spaces); the peer serializes the same way."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stream_id(index: int) -> str:
    return f"tool-{uuid.uuid5(uuid.NAMESPACE_URL, f'dtma-bench/{index}')}"


STREAM_IDS = tuple(stream_id(index) for index in range(STREAMS))


def event_data(seq: int) -> dict[str, Any]:
    return {
        "tool": TOOLS[seq % len(TOOLS)],
        "replica": seq % 3,
        "status": STATUSES[seq % len(STATUSES)],
        "latency_ms": (seq * 37) % 1_000,
        "seq": seq,
    }


@dataclass(frozen=True, slots=True)
class Append:
    """One append: events for one stream. The expected version is tracked while running."""

    stream: str
    events: tuple[dict[str, Any], ...]


def single_plan(n: int) -> list[Append]:
    """N appends of one event; event i goes to stream i % 1,000 (round-robin)."""
    return [Append(STREAM_IDS[i % STREAMS], (event_data(i),)) for i in range(n)]


def batched_plan(n: int, size: int = BATCH) -> list[Append]:
    """N events in appends of `size` events; append k goes to stream k % 1,000 (round-robin)."""
    return [
        Append(
            STREAM_IDS[k % STREAMS],
            tuple(event_data(i) for i in range(start, min(start + size, n))),
        )
        for k, start in enumerate(range(0, n, size))
    ]


def warmup_plan() -> list[Append]:
    """One untimed append before each append metric (on its own stream), so that neither side
    times opening its connections; the log then holds N + 1 events."""
    return [Append("tool-warmup", (event_data(0),))]


def writer_shares(n: int, writers: int = WRITERS) -> list[list[Append]]:
    """The single-event plan split among `writers`: writer w owns the streams s with s % writers
    == w and appends their events in the original order, so no two writers share a stream and
    each writer's expected versions are exact."""
    shares: list[list[Append]] = [[] for _ in range(writers)]
    for i in range(n):
        shares[(i % STREAMS) % writers].append(Append(STREAM_IDS[i % STREAMS], (event_data(i),)))
    return shares


def stored_size(n: int) -> tuple[float, int, int, float]:
    """(average stored bytes, min, max, average data bytes) of the workload's events, counting
    data + metadata `{}` + type + stream id, as UTF-8."""
    sizes = []
    data_total = 0
    for i in range(n):
        data = len(canonical_json(event_data(i)).encode())
        data_total += data
        sizes.append(data + len(b"{}") + len(TYPE_NAME) + len(STREAM_IDS[i % STREAMS].encode()))
    return sum(sizes) / n, min(sizes), max(sizes), data_total / n


def print_metric(name: str, events: int, seconds: float) -> None:
    print(f"{name}: {events / seconds:.1f}", flush=True)
