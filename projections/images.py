"""Which image each server runs, a pure fold: the digest pinned for its declaration (replicas
are created from it until it is declared again) and why its last pull failed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from projections import events
from projections.folds import Projection


class Pin(BaseModel):
    model_config = ConfigDict(frozen=True)

    generation: int
    image: str
    digest: str
    reference: str  # what replicas are created from: `repo@sha256:…`, or an image id


class PullFailure(BaseModel):
    model_config = ConfigDict(frozen=True)

    generation: int
    image: str
    reason: str
    at: str


class ImagesState(BaseModel):
    model_config = ConfigDict(frozen=True)

    pins: dict[str, Pin] = {}  # server id -> its latest pin
    failures: dict[str, PullFailure] = {}  # server id -> its last pull failure, until a pin

    def pin(self, server_id: str, generation: int, image: str) -> Pin | None:
        """The pin for that generation of the server running `image`, if one was made."""
        pin = self.pins.get(server_id)
        if pin is None or pin.generation != generation or pin.image != image:
            return None
        return pin

    def failure(self, server_id: str, generation: int) -> PullFailure | None:
        """Why the image of that generation of the server could not be had, until it is."""
        failure = self.failures.get(server_id)
        return failure if failure is not None and failure.generation == generation else None


def apply(state: ImagesState, event: events.Event, at: events.Envelope) -> ImagesState:
    match event:
        case events.ImagePulled():
            pin = Pin(
                generation=event.generation,
                image=event.image,
                digest=event.digest,
                reference=event.reference,
            )
            failures = {k: v for k, v in state.failures.items() if k != event.server_id}
            return ImagesState(pins={**state.pins, event.server_id: pin}, failures=failures)
        case events.ImagePullFailed():
            failure = PullFailure(
                generation=event.generation,
                image=event.image,
                reason=event.reason,
                at=at.recorded_at,
            )
            return state.model_copy(
                update={"failures": {**state.failures, event.server_id: failure}}
            )
        case events.ServerRemoved():
            return _without(state, event.server_id)
    return state


def _without(state: ImagesState, server_id: str) -> ImagesState:
    return ImagesState(
        pins={k: v for k, v in state.pins.items() if k != server_id},
        failures={k: v for k, v in state.failures.items() if k != server_id},
    )


PROJECTION = Projection(name="images", fold_version=1, state_type=ImagesState, apply=apply)
