"""The health fold: breaker configuration per server and the default."""

from __future__ import annotations

from projections import events, health

AT = events.Envelope(1, "breaker-default", 1, "T")


def fold(*configured: events.CircuitBreakerConfigured) -> health.HealthState:
    state = health.HealthState()
    for event in configured:
        state = health.apply(state, event, AT)
    return state


def test_a_server_inherits_what_it_does_not_set_from_the_default_and_the_built_in() -> None:
    state = fold(
        events.CircuitBreakerConfigured(failure_threshold=5),
        events.CircuitBreakerConfigured(mcp_server_id="srv", open_timeout_ms=100),
    )

    config = state.breaker_config("srv")
    assert (config.failure_threshold, config.open_timeout_ms, config.recovery_threshold) == (
        5,
        100,
        2,
    )
    assert state.breaker_config(None).open_timeout_ms == 30_000
    assert state.knows("srv") and not state.knows("other")


def test_a_later_default_changes_servers_that_inherit_it_but_not_their_overrides() -> None:
    state = fold(
        events.CircuitBreakerConfigured(mcp_server_id="srv", failure_threshold=9),
        events.CircuitBreakerConfigured(failure_threshold=4, recovery_threshold=7),
    )

    assert state.breaker_config("srv").failure_threshold == 9
    assert state.breaker_config("srv").recovery_threshold == 7


def test_the_fold_ignores_nothing_it_is_given_and_does_not_mutate_the_old_state() -> None:
    before = fold(events.CircuitBreakerConfigured(mcp_server_id="a", enabled=False))
    after = health.apply(before, events.CircuitBreakerConfigured(mcp_server_id="b"), AT)

    assert set(before.breaker_servers) == {"a"} and set(after.breaker_servers) == {"a", "b"}
    assert after.breaker_config("a").enabled is False
