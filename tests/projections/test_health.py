"""The health fold: breaker configuration per server and the default."""

from __future__ import annotations

from projections import events, health, specs

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


def at(position: int, time: str = "2026-01-01T00:00:00.000000Z") -> events.Envelope:
    return events.Envelope(position, "server-srv", position, time)


def opened(position: int = 1, timeout_ms: int = 30_000) -> events.CircuitTransitioned:
    return events.CircuitTransitioned(
        server_id="srv",
        from_state="closed",
        to_state="open",
        cause="3 consecutive failures",
        failures=3,
        open_timeout_ms=timeout_ms,
    )


def test_opening_records_when_and_until_when() -> None:
    state = health.apply(health.HealthState(), opened(timeout_ms=1_500), at(7))

    view = state.circuit("srv")
    assert (view.state, view.opened_at, view.next_attempt_at) == (
        "open",
        "2026-01-01T00:00:00.000000Z",
        "2026-01-01T00:00:01.500000Z",
    )
    assert [(t.to_state, t.position) for t in view.transitions] == [("open", 7)]


def test_half_open_remembers_where_the_attempt_began_and_closing_forgets_the_opening() -> None:
    state = health.apply(health.HealthState(), opened(), at(1))
    half = events.CircuitTransitioned(
        server_id="srv", from_state="open", to_state="half_open", cause="timeout"
    )
    state = health.apply(state, half, at(2))
    assert (state.circuit("srv").half_open_position, state.circuit("srv").next_attempt_at) == (
        2,
        None,
    )

    closed = events.CircuitTransitioned(
        server_id="srv", from_state="half_open", to_state="closed", cause="recovered"
    )
    state = health.apply(state, closed, at(3))

    view = state.circuit("srv")
    assert (view.state, view.opened_at, view.half_open_position) == ("closed", None, None)
    assert len(view.transitions) == 3


def test_only_the_last_twenty_transitions_are_kept() -> None:
    state = health.HealthState()
    for position in range(1, 26):
        state = health.apply(state, opened(), at(position))

    positions = [t.position for t in state.circuit("srv").transitions]
    assert positions == list(range(6, 26))


def test_a_replica_verdict_applies_to_its_container_only() -> None:
    changed = events.ReplicaHealthChanged(
        server_id="srv", replica=1, container_id="c1", health="unhealthy", timed_out=True
    )
    state = health.apply(health.HealthState(), changed, at(4))

    assert state.replica_health("srv", 1, "c1") == "unhealthy"
    assert state.replica_health("srv", 1, "c2") is None  # a replacement is not judged yet
    assert state.replicas["srv"][1].timed_out


def test_deaths_and_failed_starts_are_kept_as_failures_and_forgotten_with_the_group() -> None:
    state = health.HealthState()
    declared = events.ServerDeclared(
        group_id="g", spec=specs.ServerSpec(id="srv", image="example/x:1")
    )
    died = events.ContainerDied(
        server_id="srv", replica=1, container_id="c1", exit_code=137, oom_killed=True
    )
    refused = events.ContainerFailedToStart(
        group_id="g", server_id="srv", replica=2, reason="no such image"
    )
    for position, event in enumerate((declared, died, refused, opened()), start=1):
        state = health.apply(state, event, at(position))

    assert [(f.replica, f.exit_code, f.oom_killed, f.reason) for f in state.failures["srv"]] == [
        (1, 137, True, "out of memory"),
        (2, None, False, "no such image"),
    ]

    state = health.apply(state, events.GroupRemoved(group_id="g"), at(9))

    assert "srv" not in state.failures and state.circuit("srv") == health.CLOSED
