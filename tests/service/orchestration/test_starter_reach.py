"""`replica_container`: whether a replica's port is published, as its spec and the reach say.
Pure. (Named apart from test_starter.py, which another branch adds at the same time.)"""

from __future__ import annotations

from projections import events, groups, specs
from service import container_policy
from service.docker.adapter import ContainerSpec
from service.orchestration.starter import replica_container


def made(
    network_reach: bool,
    publish_port: bool | None = None,
    host_ports: tuple[tuple[int, int], ...] = (),
) -> ContainerSpec:
    spec = specs.ServerSpec(
        id="s", image="example/s:1", port=8000, host_ports=host_ports, publish_port=publish_port
    )
    state = groups.GroupsState()
    declared = [
        events.GroupDeclared(group_id="g", name="g"),
        events.ServerDeclared(group_id="g", spec=spec),
    ]
    for position, event in enumerate(declared, start=1):
        at = events.Envelope(position, "stream", position, "2026-01-01T12:00:00.000000Z")
        state = groups.apply(state, event, at)
    policy = container_policy.DEFAULT_POLICY
    return replica_container(state, "g", state.servers["s"], 1, policy, {}, network_reach)


def test_by_default_the_port_is_published_in_host_reach_only() -> None:
    assert made(network_reach=False).container_port == 8000
    assert made(network_reach=True).container_port is None


def test_publish_port_decides_in_either_reach() -> None:
    assert made(network_reach=True, publish_port=True).container_port == 8000
    assert made(network_reach=False, publish_port=False).container_port is None


def test_in_network_reach_fixed_host_ports_are_still_published_on_the_group_network() -> None:
    container = made(network_reach=True, host_ports=((9000, 19000),))
    assert container.host_ports == ((9000, 19000),)
    assert container.network == "dtma-g"
