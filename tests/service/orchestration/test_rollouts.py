"""`rollouts`: which replica gives way for new env credentials, and whose successor starts next,
from folded events and containers as the engine reports them (no I/O)."""

from __future__ import annotations

from projections import containers, credentials, events, groups, health, specs
from service.docker.adapter import ContainerInfo
from service.orchestration import rollouts
from service.orchestration.replicas import CREDENTIALS_LABEL, Replica
from service.status import ReadModels

UNPROBED = specs.HealthCheck(type="none")  # running counts as healthy


def fold(*facts: events.Event) -> ReadModels:
    models = ReadModels(
        groups.GroupsState(),
        containers.ContainersState(),
        health.HealthState(),
        credentials.CredentialsState(),
    )
    for position, event in enumerate(facts, start=1):
        at = events.Envelope(position, "stream", position, "2026-01-01T12:00:00.000000Z")
        models = ReadModels(
            groups.apply(models.desired, event, at),
            containers.apply(models.observed, event, at),
            health.apply(models.health, event, at),
            credentials.apply(models.credentials, event, at),
        )
    return models


def declared(replicas: int = 2, host_ports: bool = False) -> list[events.Event]:
    spec = specs.ServerSpec(
        id="s",
        image="example/s:1",
        replicas=replicas,
        health_check=UNPROBED,
        host_ports=((8000, 18000),) if host_ports else (),
    )
    return [
        events.GroupDeclared(group_id="g", name="g"),
        events.ServerDeclared(group_id="g", spec=spec),
    ]


def env_credentials(version: int) -> events.CredentialsInjected:
    sealed = specs.SealedSecret(name="API_KEY", mode="env", kind="api_key", ciphertext="c2Vh")
    return events.CredentialsInjected(
        server_id="s", agent_id="a", version=version, key_id=f"k{version}", secrets=(sealed,)
    )


def replica(number: int, version: int | None, running: bool = True, cid: str = "") -> Replica:
    labels = {"dtma.group": "g", "dtma.server": "s", "dtma.replica": str(number)}
    if version is not None:
        labels[CREDENTIALS_LABEL] = str(version)
    info = ContainerInfo(
        id=cid or f"c{number}-v{version}",
        name=f"dtma_g_s_{number}",
        image="example/s:1",
        labels=labels,
        state="running" if running else "exited",
        running=running,
        exit_code=None if running else 0,
        oom_killed=False,
        started_at=None,
        finished_at=None,
        restart_count=0,
        host_port=None,
        ip_address=None,
    )
    return Replica(info, "g", "s", number, 1)


def test_a_replica_with_the_wanted_environment_stays() -> None:
    models = fold(*declared(), env_credentials(2))
    current = replica(1, 2)

    assert rollouts.rolling_reason(models, current, [current], set()) is None


def test_a_stale_replica_goes_only_once_its_successor_is_healthy() -> None:
    models = fold(*declared(), env_credentials(2))
    stale, successor = replica(1, 1), replica(1, 2)
    starting = replica(1, 2, running=False)

    alone = rollouts.rolling_reason(models, stale, [stale], set())
    beside_a_stopped_one = rollouts.rolling_reason(models, stale, [stale, starting], set())
    replaced = rollouts.rolling_reason(models, stale, [stale, successor], set())

    assert (alone, beside_a_stopped_one) == (None, None)
    assert replaced == "replaced by a healthy successor to take credentials version 2"


def test_revoked_env_credentials_are_dropped_the_same_way() -> None:
    models = fold(
        *declared(),
        env_credentials(1),
        events.CredentialsRevoked(server_id="s", versions=(1,), key_ids=("k1",)),
    )
    stale, successor = replica(1, 1), replica(1, None)

    reason = rollouts.rolling_reason(models, stale, [stale, successor], set())

    assert reason == "replaced by a healthy successor to drop revoked env credentials"


def test_with_fixed_host_ports_replicas_go_first_and_one_at_a_time() -> None:
    models = fold(*declared(replicas=2, host_ports=True), env_credentials(2))
    first, second = replica(1, 1), replica(2, 1)
    rolling: set[str] = set()

    reasons = [
        rollouts.rolling_reason(models, r, [first, second], rolling) for r in (first, second)
    ]

    assert reasons == ["replaced to take credentials version 2 (one at a time)", None]
    assert rolling == {"s"}


def test_with_fixed_host_ports_none_goes_while_a_replica_is_missing() -> None:
    models = fold(*declared(replicas=2, host_ports=True), env_credentials(2))
    only = replica(1, 1)

    assert rollouts.rolling_reason(models, only, [only], set()) is None


def test_the_lowest_running_stale_replica_gets_its_successor_first() -> None:
    models = fold(*declared(replicas=3), env_credentials(2))
    kept = [replica(3, 1), replica(2, 1), replica(1, 1, running=False), replica(1, 2, cid="x")]

    assert rollouts.stale_replica(models, "s", kept[:3]) == 2
    assert rollouts.stale_replica(models, "s", kept) is None  # replica 1 has two: one at a time
    assert rollouts.stale_replica(models, "s", [replica(1, 2), replica(2, 2)]) is None
