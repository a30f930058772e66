"""The credentials fold: versions, their status, and forgetting (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from projections import credentials, events, specs
from tests.projections.folding import fold_facts

AT = "2026-01-01T00:00:00.000000Z"
PLUS_TWO = timezone(timedelta(hours=2))


def fold(*facts: tuple[str, events.Event]) -> credentials.CredentialsState:
    return fold_facts(credentials.PROJECTION, facts, AT)


def injected(version: int, *names: str) -> tuple[str, events.Event]:
    secrets = tuple(
        specs.SealedSecret(name=n, mode="file", kind="api_key", ciphertext=f"ct-{n}") for n in names
    )
    event = events.CredentialsInjected(
        server_id="srv", agent_id="agent", version=version, key_id=f"k{version}", secrets=secrets
    )
    return "credentials-srv", event


def applied(version: int, replica: int, container: str) -> tuple[str, events.Event]:
    event = events.CredentialsApplied(
        server_id="srv", version=version, replica=replica, container_id=container, names=("a",)
    )
    return "server-srv", event


def test_a_version_is_pending_until_a_replica_holds_it() -> None:
    state = fold(injected(1, "a", "b"))
    version = state.of("srv").active()
    assert version is not None
    assert (version.status, version.names, version.modes) == (
        "pending",
        ("a", "b"),
        {"a": "file", "b": "file"},
    )
    assert state.next_version("srv") == 2 and state.stream_versions == {"credentials-srv": 1}

    state = fold(injected(1, "a"), applied(1, 1, "c1"))

    version = state.of("srv").active()
    assert version is not None and (version.status, version.applied) == ("injected", {1: "c1"})


def test_a_new_version_retires_the_old_and_retirement_forgets_it() -> None:
    retired = events.CredentialsRetired(server_id="srv", versions=(1,), key_ids=("k1",))
    state = fold(injected(1, "a"), applied(1, 1, "c1"), injected(2, "a"), ("server-srv", retired))

    old, new = state.of("srv").versions[1], state.of("srv").versions[2]
    assert (old.status, old.forgotten, old.secrets, old.names) == ("retired", True, (), ("a",))
    assert state.of("srv").active() == new and new.status == "pending"


def test_revocation_forgets_every_listed_version_and_leaves_nothing_active() -> None:
    revoked = events.CredentialsRevoked(server_id="srv", versions=(1, 2), key_ids=("k1", "k2"))
    state = fold(injected(1, "a"), injected(2, "a"), ("credentials-srv", revoked))

    assert state.of("srv").active() is None
    assert {v.status for v in state.of("srv").versions.values()} == {"revoked"}
    assert all(v.secrets == () for v in state.of("srv").versions.values())
    # a fact about a forgotten version changes nothing
    assert (
        fold(injected(1, "a"), ("credentials-srv", revoked), applied(1, 1, "c1"))
        .of("srv")
        .versions[1]
        .applied
        == {}
    )


def test_failures_are_kept_with_their_reason() -> None:
    failed = events.CredentialsFailed(server_id="srv", version=1, reason="no shell", replica=1)
    oauth = events.OAuthRefreshFailed(server_id="srv", version=1, provider="gh", reason="HTTP 400")
    state = fold(injected(1, "a"), ("server-srv", failed), ("oauth-srv", oauth))

    version = state.of("srv").versions[1]
    assert (version.status, version.last_error, version.oauth_errors) == (
        "failed",
        "no shell",
        {"gh": "HTTP 400"},
    )


def version_expiring(at: str | None) -> credentials.Version:
    return credentials.Version(
        version=1,
        agent_id="agent",
        key_id="k1",
        secrets=(),
        names=(),
        modes={},
        injected_at=AT,
        expires_at=at,
    )


@pytest.mark.parametrize(
    ("expires_at", "now", "expired"),
    [
        # `now` in another zone: as text, 11:30 (+02:00) is after 10:00Z; in time it is 09:30Z
        ("2026-12-01T10:00:00.000000Z", datetime(2026, 12, 1, 11, 30, tzinfo=PLUS_TWO), False),
        # fewer fractional digits: as text "00Z" sorts after "00.500000Z"
        ("2026-12-01T10:00:00Z", datetime(2026, 12, 1, 10, 0, 0, 500_000, tzinfo=UTC), True),
    ],
)
def test_expiry_is_compared_as_a_time_where_text_would_be_wrong(
    expires_at: str, now: datetime, expired: bool
) -> None:
    as_text = expires_at < now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the comparison it replaces
    assert as_text is not expired
    assert version_expiring(expires_at).expired(now) is expired
    assert not version_expiring(None).expired(now)
