"""Pure decisions: the breaker command against the current settings, and how layers combine."""

from __future__ import annotations

from typing import Any

from projections import events, health
from service.handling import commands, decisions


def command(**wire: Any) -> commands.ConfigureBreaker:
    """A command as the HTTP layer builds it, from camelCase wire fields."""
    return commands.ConfigureBreaker.model_validate(wire)


def test_keeps_the_fields_a_command_omits() -> None:
    current = health.BreakerSettings(
        failure_threshold=7, recovery_threshold=4, open_timeout_ms=9_000, enabled=False
    )

    event = decisions.configure_breaker(current, command(failureThreshold=9))

    assert event == events.CircuitBreakerConfigured(
        failure_threshold=9, recovery_threshold=4, open_timeout_ms=9_000, enabled=False
    )


def test_replaces_every_field_a_command_gives() -> None:
    current = health.BreakerSettings(failure_threshold=7, recovery_threshold=4)

    event = decisions.configure_breaker(
        current,
        command(
            failureThreshold=1, recoveryThreshold=2, openTimeout=0, circuitBreakerEnabled=False
        ),
    )

    assert (event.failure_threshold, event.recovery_threshold) == (1, 2)
    assert (event.open_timeout_ms, event.enabled) == (0, False)


def test_leaves_unset_fields_unset_so_they_keep_inheriting() -> None:
    event = decisions.configure_breaker(health.BreakerSettings(), command(openTimeout=5_000))

    assert health.settings_of(event) == health.BreakerSettings(open_timeout_ms=5_000)


def test_a_command_without_a_server_configures_the_default_scope() -> None:
    event = decisions.configure_breaker(health.BreakerSettings(), command(failureThreshold=5))

    assert event.mcp_server_id is None
    assert health.breaker_stream_of(None) == "breaker-default"


def test_a_command_with_a_server_configures_that_server_only() -> None:
    event = decisions.configure_breaker(
        health.BreakerSettings(), command(mcpServerId="search", failureThreshold=5)
    )

    assert event.mcp_server_id == "search"
    assert health.breaker_stream_of("search") == "breaker-search"
    assert health.breaker_stream_of("search") != health.breaker_stream_of(None)


def test_the_last_configuration_of_a_stream_is_its_current_settings() -> None:
    history: list[events.Event] = [
        events.CircuitBreakerConfigured(failure_threshold=3),
        events.CircuitBreakerConfigured(failure_threshold=8, enabled=False),
    ]

    current = health.latest_settings(history)
    event = decisions.configure_breaker(current, command(recoveryThreshold=6))

    assert health.settings_of(event) == health.BreakerSettings(
        failure_threshold=8, recovery_threshold=6, enabled=False
    )


def test_effective_config_is_the_built_in_one_when_nothing_is_configured() -> None:
    assert health.effective(health.BreakerSettings(), None) == health.BreakerConfig(
        failure_threshold=3, recovery_threshold=2, open_timeout_ms=30_000, enabled=True
    )


def test_the_default_overrides_the_built_in_values_it_sets() -> None:
    default = health.BreakerSettings(failure_threshold=10)

    config = health.effective(default, None)

    assert config.failure_threshold == 10
    assert config.recovery_threshold == health.BUILT_IN.recovery_threshold


def test_a_server_override_beats_the_default_and_inherits_the_rest() -> None:
    default = health.BreakerSettings(failure_threshold=10, open_timeout_ms=60_000)
    override = health.BreakerSettings(failure_threshold=2, enabled=False)

    config = health.effective(default, override)

    assert config == health.BreakerConfig(
        failure_threshold=2,  # the server's
        recovery_threshold=health.BUILT_IN.recovery_threshold,  # built in
        open_timeout_ms=60_000,  # the default's
        enabled=False,  # the server's
    )


def test_a_server_override_of_zero_or_false_is_kept_not_treated_as_missing() -> None:
    default = health.BreakerSettings(open_timeout_ms=60_000, enabled=True)
    override = health.BreakerSettings(open_timeout_ms=0, enabled=False)

    config = health.effective(default, override)

    assert (config.open_timeout_ms, config.enabled) == (0, False)


def test_the_health_state_layers_the_default_under_each_server() -> None:
    state = health.HealthState(
        breaker_default=health.BreakerSettings(recovery_threshold=5),
        breaker_servers={"search": health.BreakerSettings(failure_threshold=9)},
    )

    assert state.breaker_config("search").failure_threshold == 9
    assert state.breaker_config("search").recovery_threshold == 5
    assert state.breaker_config("other") == health.effective(state.breaker_default, None)
    assert state.knows("search")
    assert not state.knows("other")
