"""`replica_container`: the container a replica gets, as its spec and the reach make it. Pure."""

from __future__ import annotations

from projections import events, groups, specs
from service import container_policy
from service.docker.adapter import ContainerSpec
from service.orchestration.starter import replica_container


def server(host_ports: tuple[tuple[int, int], ...] = ()) -> tuple[groups.GroupsState, str]:
    spec = specs.ServerSpec(id="s", image="example/s:1", port=8000, host_ports=host_ports)
    state = groups.GroupsState()
    for position, event in enumerate(
        [
            events.GroupDeclared(group_id="g", name="g"),
            events.ServerDeclared(group_id="g", spec=spec),
        ],
        start=1,
    ):
        at = events.Envelope(position, "stream", position, "2026-01-01T12:00:00.000000Z")
        state = groups.apply(state, event, at)
    return state, "s"


def made(unpublished: bool, host_ports: tuple[tuple[int, int], ...] = ()) -> ContainerSpec:
    state, server_id = server(host_ports)
    policy = container_policy.DEFAULT_POLICY
    return replica_container(state, "g", state.servers[server_id], 1, policy, {}, unpublished)


def test_in_host_reach_the_port_is_published_on_the_loopback() -> None:
    container = made(unpublished=False)
    assert container.container_port == 8000


def test_in_network_reach_the_port_is_not_published_but_fixed_host_ports_still_are() -> None:
    container = made(unpublished=True, host_ports=((9000, 19000),))
    assert container.container_port is None
    assert container.host_ports == ((9000, 19000),)
    assert container.network == "dtma-g"
