"""What a projection is: a name, a state type, a pure fold, and a version of that fold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

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
