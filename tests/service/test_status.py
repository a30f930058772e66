"""`status.endpoint`: where DTMA reaches a replica, from what its ContainerStarted recorded."""

from __future__ import annotations

from projections import containers
from service import status


def started(host_port: int | None, address: str | None) -> containers.Instance:
    return containers.Instance(
        replica=1,
        container_id="c1",
        container_name="n",
        state="running",
        host_port=host_port,
        address=address,
    )


def test_a_recorded_address_wins_over_a_loopback_port_as_network_reach_records_both() -> None:
    assert status.endpoint(started(32768, "172.18.0.2"), 8000, "/mcp") == (
        "http://172.18.0.2:8000/mcp"
    )


def test_host_reach_gives_the_loopback_port_or_without_one_the_address() -> None:
    assert status.endpoint(started(32768, None), 8000, "/mcp") == "http://127.0.0.1:32768/mcp"
    assert status.endpoint(started(None, "172.18.0.3"), 9000, "/") == "http://172.18.0.3:9000/"
    assert status.endpoint(started(None, None), 8000, "/mcp") is None
