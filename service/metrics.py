"""Prometheus metrics at `GET /metrics`: what the service did (HTTP requests, appends, probes)
as counters and histograms, and what the read models hold (projection lag, circuits, replicas)
read at scrape time. One registry per app, so several apps in one process stay apart."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as CounterMetric
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from projections import containers, health
from projections import runner as projections_runner

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = CounterMetric(
            "dtma_http_requests",
            "HTTP requests answered, by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "dtma_http_request_seconds",
            "Time to answer an HTTP request (streams: until they end)",
            ["method", "route"],
            registry=self.registry,
        )
        self.events_appended = CounterMetric(
            "dtma_events_appended", "Events appended to the log", registry=self.registry
        )
        self.append_seconds = Histogram(
            "dtma_append_seconds",
            "Time from asking for an append to its durable commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.fold_failures = CounterMetric(
            "dtma_projection_failures",
            "Events the projections stopped before (each counted once, however often retried)",
            registry=self.registry,
        )
        self.probes = CounterMetric(
            "dtma_probe_results",
            "Health probe results, by probe type and result",
            ["type", "result"],
            registry=self.registry,
        )
        self.loop_failures = CounterMetric(
            "dtma_loop_failures",
            "Background loops that raised (a bug) and were restarted, by component",
            ["component"],
            registry=self.registry,
        )
        # component -> how often its loop raised and was restarted: also shown in /healthz
        self.failed_loops: dict[str, int] = {}

    def appended(self, count: int, seconds: float) -> None:
        self.events_appended.inc(count)
        self.append_seconds.observe(seconds)

    def probed(self, probe_type: str, passed: bool) -> None:
        self.probes.labels(probe_type, "pass" if passed else "fail").inc()

    def loop_failed(self, component: str) -> None:
        self.loop_failures.labels(component).inc()
        self.failed_loops[component] = self.failed_loops.get(component, 0) + 1

    def watch(self, runner: projections_runner.ProjectionRunner) -> None:
        """Also report, at each scrape, what the read models hold."""
        self._collector = ReadModelCollector(runner)
        self.registry.register(self._collector)
        runner.failure_observers.append(lambda failure: self.fold_failures.inc())

    def exposition(self, head: int) -> bytes:
        """The text a scrape gets; `head` is the log's head position now."""
        if hasattr(self, "_collector"):
            self._collector.head = head
        return generate_latest(self.registry)


class ReadModelCollector(Collector):
    def __init__(self, runner: projections_runner.ProjectionRunner) -> None:
        self._runner = runner
        self.head = 0

    def collect(self) -> Iterator[Metric]:
        head = self.head
        lag = GaugeMetricFamily(
            "dtma_projection_lag_events", "Events in the log the projections have not folded yet"
        )
        lag.add_metric([], max(head - self._runner.position, 0))
        yield lag
        stopped = GaugeMetricFamily(
            "dtma_projections_stopped",
            "1 while the projections are stopped before an event they cannot fold (see /healthz)",
        )
        stopped.add_metric([], 1 if self._runner.failure is not None else 0)
        yield stopped
        circuits = GaugeMetricFamily(
            "dtma_circuits", "MCP servers whose circuit is in each state", labels=["state"]
        )
        desired = self._runner.state(health.PROJECTION)
        known = set(desired.server_groups)
        states = Counter(desired.circuit(s).state for s in known)
        for state in ("closed", "open", "half_open"):
            circuits.add_metric([state], states.get(state, 0))
        yield circuits
        replicas = GaugeMetricFamily(
            "dtma_replicas", "Replica containers in each state", labels=["state"]
        )
        observed = self._runner.state(containers.PROJECTION)
        by_state: Counter[str] = Counter(
            i.state for r in observed.instances.values() for i in r.values()
        )
        for state in ("created", "running", "exited", "failed"):
            replicas.add_metric([state], by_state.get(state, 0))
        yield replicas


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def middleware(metrics: Metrics) -> Callable[..., Any]:
    """Counts and times every request by its route's pattern (not its path: ids stay out)."""

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        began = time.perf_counter()
        route = request.match_info.route.resource
        pattern = route.canonical if route is not None else "unmatched"
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.http_requests.labels(request.method, pattern, str(status)).inc()
            metrics.http_seconds.labels(request.method, pattern).observe(
                time.perf_counter() - began
            )

    return measure
