"""The health routes: the circuit-breaker command and the per-server health read."""

from __future__ import annotations

from tests.conftest import AUTH
from tests.support.api import Client, configure, error_of


async def test_answers_an_unknown_mcp_server_with_404(client: Client) -> None:
    await configure(client, {"mcpServerId": "known"})

    response = await client.get("/health/mcp/unknown", headers=AUTH)

    error = await error_of(response, 404)
    assert error["code"] == "not_found"


async def test_configures_the_default_then_a_server_that_inherits_the_rest(
    client: Client,
) -> None:
    default = await configure(client, {"failureThreshold": 5, "openTimeout": 60_000})
    server = await configure(client, {"mcpServerId": "search", "recoveryThreshold": 4})

    assert default == {
        "config": {
            "mcpServerId": None,
            "failureThreshold": 5,
            "recoveryThreshold": 2,
            "openTimeout": 60_000,
            "circuitBreakerEnabled": True,
        },
        "position": 1,
    }
    assert server == {
        "config": {
            "mcpServerId": "search",
            "failureThreshold": 5,
            "recoveryThreshold": 4,
            "openTimeout": 60_000,
            "circuitBreakerEnabled": True,
        },
        "position": 2,
    }


async def test_a_second_command_for_a_server_keeps_its_earlier_fields(client: Client) -> None:
    await configure(client, {"mcpServerId": "search", "failureThreshold": 8})

    answer = await configure(client, {"mcpServerId": "search", "circuitBreakerEnabled": False})

    assert answer["config"]["failureThreshold"] == 8
    assert answer["config"]["circuitBreakerEnabled"] is False


async def test_serves_the_configuration_back_once_the_read_model_reaches_the_position(
    client: Client,
) -> None:
    await configure(client, {"failureThreshold": 5})
    answer = await configure(
        client, {"mcpServerId": "search", "recoveryThreshold": 4, "circuitBreakerEnabled": False}
    )

    response = await client.get(
        f"/health/mcp/search?minPosition={answer['position']}", headers=AUTH
    )

    assert response.status == 200
    health = await response.json()
    assert health["mcpServerId"] == "search"
    assert health["config"] == answer["config"]
    assert health["position"] >= answer["position"]
    for field in ("health", "circuitState", "consecutiveFailures", "replicas", "transitions"):
        assert field in health


async def test_a_later_default_changes_what_a_server_inherits(client: Client) -> None:
    await configure(client, {"mcpServerId": "search", "recoveryThreshold": 4})
    answer = await configure(client, {"failureThreshold": 11})

    response = await client.get(
        f"/health/mcp/search?minPosition={answer['position']}", headers=AUTH
    )

    config = (await response.json())["config"]
    assert (config["failureThreshold"], config["recoveryThreshold"]) == (11, 4)
