"""A replica's container as the starter makes it from its server's spec. Pure."""

from __future__ import annotations

from typing import Any

from projections import events, groups, specs
from service import container_policy
from service.orchestration.starter import replica_container


def declared(**spec: Any) -> groups.GroupsState:
    state = groups.GroupsState()
    produced: list[events.Event] = [
        events.GroupDeclared(group_id="g", name="g", internal=False, limits=None),
        events.ServerDeclared(group_id="g", spec=specs.ServerSpec(id="s", image="i", **spec)),
    ]
    for position, event in enumerate(produced, start=1):
        state = groups.apply(state, event, events.Envelope(position, "group-g", position, "T"))
    return state


def test_a_stdio_replica_keeps_stdin_open_and_publishes_no_port() -> None:
    state = declared(transport="stdio")
    made = replica_container(state, "g", state.servers["s"], 1, container_policy.DEFAULT_POLICY, {})
    assert made.open_stdin and made.container_port is None


def test_a_streamable_http_replica_publishes_its_port_with_stdin_closed() -> None:
    state = declared(port=9000)
    made = replica_container(state, "g", state.servers["s"], 1, container_policy.DEFAULT_POLICY, {})
    assert not made.open_stdin and made.container_port == 9000
