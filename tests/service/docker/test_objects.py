"""What the adapter asks Docker for: the create body of a spec. Pure."""

from __future__ import annotations

from service.docker.objects import ContainerSpec, container_config, container_info


def test_fixed_host_ports_and_the_free_one_are_all_on_the_loopback() -> None:
    spec = ContainerSpec(name="n", image="i", container_port=8000, host_ports=((9000, 19000),))
    config = container_config(spec)
    assert config["HostConfig"]["PortBindings"] == {
        "9000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "19000"}],
        "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
    }
    assert set(config["ExposedPorts"]) == {"8000/tcp", "9000/tcp"}


def test_a_fixed_host_port_replaces_the_free_one_of_the_same_port() -> None:
    spec = ContainerSpec(name="n", image="i", container_port=8000, host_ports=((8000, 18000),))
    bindings = container_config(spec)["HostConfig"]["PortBindings"]
    assert bindings == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18000"}]}


def test_an_open_stdin_is_kept_open_without_a_tty_and_only_when_asked() -> None:
    opened = container_config(ContainerSpec(name="n", image="i", open_stdin=True))
    assert (opened["OpenStdin"], opened["StdinOnce"], opened["Tty"]) == (True, False, False)
    assert "OpenStdin" not in container_config(ContainerSpec(name="n", image="i"))


def test_reads_each_network_a_container_is_on_with_its_address_and_its_network_mode() -> None:
    details = {
        "Id": "c1",
        "HostConfig": {"NetworkMode": "dtma-g"},
        "NetworkSettings": {
            "Networks": {"dtma-g": {"IPAddress": "172.18.0.2"}, "bridge": {"IPAddress": ""}}
        },
    }
    info = container_info(details)
    assert info.networks == {"dtma-g": "172.18.0.2", "bridge": ""}
    assert info.network_mode == "dtma-g"
