"""`adoption.unrecorded`: what the log lacks for a container that runs after a crash."""

from __future__ import annotations

from projections import containers, events
from service.docker.adapter import ContainerInfo
from service.orchestration import adoption
from service.orchestration.replicas import Replica


def replica(container_id: str = "c1", running: bool = True, version: str | None = None) -> Replica:
    labels = {"dtma.group": "g", "dtma.server": "s", "dtma.replica": "1", "dtma.generation": "7"}
    if version is not None:
        labels["dtma.credentials-version"] = version
    info = ContainerInfo(
        id=container_id,
        name="dtma-g-s-1",
        image="img",
        labels=labels,
        state="running" if running else "created",
        running=running,
        exit_code=None,
        oom_killed=False,
        started_at=None,
        finished_at=None,
        restart_count=0,
        host_port=32768 if running else None,
        ip_address="172.18.0.2",
    )
    return Replica(info, "g", "s", 1, 7)


def instance(
    container_id: str | None = "c1",
    state: containers.State = "running",
    version: int | None = None,
) -> containers.Instance:
    return containers.Instance(
        replica=1,
        container_id=container_id,
        container_name="dtma-g-s-1",
        state=state,
        credentials_version=version,
    )


def test_a_running_container_the_log_never_saw_is_recorded_created_and_started() -> None:
    created, started = adoption.unrecorded(replica(), None, None, None)
    assert created == events.ContainerCreated(
        group_id="g",
        server_id="s",
        replica=1,
        container_id="c1",
        name="dtma-g-s-1",
        generation=7,
    )
    assert started == events.ContainerStarted(
        server_id="s", replica=1, container_id="c1", host_port=32768
    )


def test_a_container_recorded_created_but_not_started_is_recorded_started() -> None:
    [started] = adoption.unrecorded(replica(), instance(state="created"), None, None)
    assert isinstance(started, events.ContainerStarted)


def test_a_container_the_log_knows_running_needs_nothing() -> None:
    assert adoption.unrecorded(replica(), instance(), None, None) == []


def test_a_container_that_does_not_run_is_left_to_the_reconciler() -> None:
    assert adoption.unrecorded(replica(running=False), None, None, None) == []


def test_a_replacement_for_a_failed_start_is_adopted() -> None:
    adopted = adoption.unrecorded(replica(), instance(None, "failed"), None, None)
    assert [type(e) for e in adopted] == [events.ContainerCreated, events.ContainerStarted]


def test_an_unrecorded_successor_with_the_wanted_credentials_is_adopted() -> None:
    successor = replica("c2", version="2")
    adopted = adoption.unrecorded(successor, instance("c1", version=1), "2", "2")
    assert [type(e) for e in adopted] == [events.ContainerCreated, events.ContainerStarted]
    assert isinstance(adopted[0], events.ContainerCreated)
    assert adopted[0].credentials_version == 2


def test_an_old_container_its_recorded_successor_replaces_is_not_adopted_again() -> None:
    old = replica("c1", version="1")
    assert adoption.unrecorded(old, instance("c2", version=2), "1", "2") == []


def test_in_network_reach_a_container_is_adopted_with_its_address_beside_its_port() -> None:
    _created, started = adoption.unrecorded(replica(), None, None, None, by_network=True)
    assert started == events.ContainerStarted(
        server_id="s", replica=1, container_id="c1", host_port=32768, address="172.18.0.2"
    )
