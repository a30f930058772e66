"""The comprehensive report and its recommended actions, from folded events (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from projections import containers, events, groups, health, specs
from service.api import health as health_api
from service.handling import answers
from service.health import report as health_report
from service.status import ReadModels

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime(health.TIME_FORMAT)


def fold(*facts: events.Event, when: datetime = NOW) -> ReadModels:
    desired, observed, judged = (
        groups.GroupsState(),
        containers.ContainersState(),
        health.HealthState(),
    )
    for position, event in enumerate(facts, start=1):
        at = events.Envelope(position, "group-g", position, stamp(when))
        desired = groups.apply(desired, event, at)
        observed = containers.apply(observed, event, at)
        judged = health.apply(judged, event, at)
    return ReadModels(desired, observed, judged)


def declared(server_id: str, memory_mb: int | None = None) -> list[events.Event]:
    limits = specs.Limits(memory_mb=memory_mb) if memory_mb else None
    return [
        events.GroupDeclared(group_id="g", name="g"),
        events.ServerDeclared(
            group_id="g", spec=specs.ServerSpec(id=server_id, image="example/x:1", limits=limits)
        ),
    ]


def running(server_id: str, container_id: str, replica: int = 1) -> list[events.Event]:
    return [
        events.ContainerCreated(
            group_id="g",
            server_id=server_id,
            replica=replica,
            container_id=container_id,
            name=container_id,
            generation=2,
        ),
        events.ContainerStarted(
            server_id=server_id, replica=replica, container_id=container_id, host_port=40000
        ),
    ]


def verdict(server_id: str, container_id: str, ok: bool, timed_out: bool = False) -> events.Event:
    return events.ReplicaHealthChanged(
        server_id=server_id,
        replica=1,
        container_id=container_id,
        health="healthy" if ok else "unhealthy",
        reason=None if ok else "timed out after 2000 ms",
        timed_out=timed_out,
    )


def comprehensive(models: ReadModels) -> dict[str, Any]:
    """The report as GET /health/comprehensive answers it (no foreign containers)."""
    return health_api.comprehensive_report(models, NOW, foreign=(), position=0).wire()


def summary(desired: int, verdict: answers.ServerHealth) -> answers.McpServerStatus:
    return answers.McpServerStatus(
        id="a",
        group_id="g",
        image="example/x:1",
        image_digest=None,
        desired_replicas=desired,
        running_replicas=0,
        healthy_replicas=0,
        status="pending",
        reason=None,
        health=verdict,
        circuit_state="closed",
        endpoints=[],
        instances=[],
    )


def actions(report: dict[str, object]) -> dict[str, str]:
    listed = report["recommendedActions"]
    assert isinstance(listed, list)
    return {a["action"]: a["reason"] for a in listed}


def test_a_healthy_fleet_reports_healthy_and_recommends_nothing() -> None:
    models = fold(*declared("a"), *running("a", "c1"), verdict("a", "c1", ok=True))

    report = comprehensive(models)

    assert report["overallStatus"] == "healthy"
    assert report["failedContainers"] == [] and report["recommendedActions"] == []
    assert report["mcpServerStates"][0]["healthyReplicas"] == 1


def test_a_replica_running_but_timing_out_is_unhealthy_and_to_be_inspected() -> None:
    models = fold(*declared("a"), *running("a", "c1"), verdict("a", "c1", ok=False, timed_out=True))

    report = comprehensive(models)

    assert report["overallStatus"] == "unhealthy"
    state = report["mcpServerStates"][0]
    assert (state["status"], state["health"], state["instances"][0]["health"]) == (
        "running",
        "unhealthy",
        "unhealthy",
    )
    assert "probes time out" in actions(report)["inspect_server"]


def test_an_oom_kill_asks_for_more_memory_and_a_crash_for_the_logs() -> None:
    models = fold(
        *declared("a", memory_mb=16),
        *running("a", "c1"),
        events.ContainerDied(
            server_id="a", replica=1, container_id="c1", exit_code=137, oom_killed=True
        ),
        *running("a", "c2"),
        events.ContainerDied(server_id="a", replica=1, container_id="c2", exit_code=3),
    )

    report = comprehensive(models)

    assert [
        (f["containerId"], f["exitCode"], f["oomKilled"]) for f in report["failedContainers"]
    ] == [
        ("c1", 137, True),
        ("c2", 3, False),
    ]
    found = actions(report)
    assert "16 MB" in found["raise_memory_limit"]
    assert "exited with code 3" in found["check_logs_and_credentials"]


def test_an_open_circuit_says_to_restart_the_group_once_fixed() -> None:
    models = fold(
        *declared("a"),
        events.CircuitTransitioned(
            server_id="a",
            from_state="closed",
            to_state="open",
            cause="3 consecutive failures",
            open_timeout_ms=30_000,
        ),
    )

    report = comprehensive(models)

    assert "PUT /container-groups/g/restart" in actions(report)["restart_group_when_fixed"]
    assert report["mcpServerStates"][0]["circuitState"] == "open"


def test_failures_older_than_the_window_are_left_to_the_log() -> None:
    models = fold(
        *declared("a"),
        *running("a", "c1"),
        events.ContainerDied(server_id="a", replica=1, container_id="c1", exit_code=1),
        when=NOW - health_report.FAILURE_WINDOW - timedelta(seconds=1),
    )

    report = comprehensive(models)

    assert report["failedContainers"] == [] and "check_logs_and_credentials" not in actions(report)


def test_overall_status_is_degraded_when_some_servers_are_healthy() -> None:
    servers = [summary(1, "healthy"), summary(1, "unhealthy"), summary(0, "unknown")]

    assert health_report.overall_status(servers) == "degraded"
    assert health_report.overall_status(servers[1:]) == "unhealthy"
    assert health_report.overall_status([]) == "healthy"
