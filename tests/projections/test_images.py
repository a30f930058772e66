"""The image folds: digests pinned per generation, pull failures until a pin, and registry
credentials as ciphertext until forgotten."""

from __future__ import annotations

from projections import events, images, registries
from tests.projections.folding import fold_facts

DIGEST = "sha256:" + "1" * 64
MOVED = "sha256:" + "2" * 64


def pulled(generation: int, digest: str) -> tuple[str, events.Event]:
    event = events.ImagePulled(
        server_id="s",
        generation=generation,
        image="reg:5000/s:v1",
        digest=digest,
        reference=f"reg:5000/s@{digest}",
    )
    return "server-s", event


def failed(generation: int) -> tuple[str, events.Event]:
    event = events.ImagePullFailed(
        server_id="s", generation=generation, image="reg:5000/s:v1", reason="unauthorized"
    )
    return "server-s", event


def test_a_pin_holds_for_its_generation_and_image_only() -> None:
    state = fold_facts(images.PROJECTION, [pulled(3, DIGEST)], "T")

    pin = state.pin("s", 3, "reg:5000/s:v1")
    assert pin is not None and pin.reference == f"reg:5000/s@{DIGEST}"
    assert state.pin("s", 4, "reg:5000/s:v1") is None  # a new generation resolves again
    assert state.pin("s", 3, "reg:5000/s:v2") is None


def test_a_failure_lasts_until_a_pin_of_its_generation_and_a_removal_forgets_both() -> None:
    state = fold_facts(images.PROJECTION, [pulled(3, DIGEST), failed(5)], "T")
    failure = state.failure("s", 5)
    assert failure is not None and failure.reason == "unauthorized"
    assert state.failure("s", 6) is None  # a redeploy is not failed by the last one

    state = fold_facts(images.PROJECTION, [failed(5), pulled(5, MOVED)], "T")
    assert state.failure("s", 5) is None

    removed = ("group-g", events.ServerRemoved(group_id="g", server_id="s"))
    state = fold_facts(images.PROJECTION, [pulled(5, MOVED), failed(5), removed], "T")
    assert state.pins == {} and state.failures == {}


def test_registry_credentials_are_kept_as_ciphertext_until_forgotten() -> None:
    stored = events.RegistryCredentialsStored(
        server="reg:5000", username="u", key_id="k1", password="ciphertext"
    )
    forgotten = events.RegistryCredentialsForgotten(server="reg:5000", key_id="k1")
    state = fold_facts(registries.PROJECTION, [("registry-reg:5000", stored)], "T")

    assert state.registries["reg:5000"].password == "ciphertext"
    assert state.stream_versions == {"registry-reg:5000": 1}
    state = fold_facts(
        registries.PROJECTION,
        [("registry-reg:5000", stored), ("registry-reg:5000", forgotten)],
        "T",
    )
    assert state.registries == {} and state.stream_versions == {"registry-reg:5000": 2}
