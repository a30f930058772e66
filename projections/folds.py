"""What a projection is: a name, a state type, a pure fold, and a version of that fold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from projections import events

S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class Projection(Generic[S]):
    """`apply` must be pure: no I/O, no clock, no randomness; state in, state out.

    Bump `fold_version` whenever `apply` or the state's shape changes: snapshots taken by
    another fold version are ignored and the projection is rebuilt from the log.
    """

    name: str
    fold_version: int
    state_type: type[S]
    apply: Callable[[S, events.Event, events.Envelope], S]

    def initial(self) -> S:
        return self.state_type()


class StreamVersioned(BaseModel):
    """A state that knows the version of its command streams, to append with it."""

    model_config = ConfigDict(frozen=True)

    stream_versions: dict[str, int] = {}


V = TypeVar("V", bound=StreamVersioned)
Fold = Callable[[V, events.Event, events.Envelope], V]


def with_stream_versions(prefix: str, fold: Fold[V]) -> Fold[V]:
    """`fold`, also recording in `stream_versions` the version of every stream whose id
    starts with `prefix`: the expected version its commands append with."""

    def apply(state: V, event: events.Event, at: events.Envelope) -> V:
        state = fold(state, event, at)
        if at.stream_id.startswith(prefix):
            versions = {**state.stream_versions, at.stream_id: at.version}
            state = state.model_copy(update={"stream_versions": versions})
        return state

    return apply
