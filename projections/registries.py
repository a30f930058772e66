"""Registry credentials, a pure fold: each registry's username and sealed password (until
forgotten), never a plaintext password."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from projections import events
from projections.folds import Projection, StreamVersioned, with_stream_versions


class Registry(BaseModel):
    model_config = ConfigDict(frozen=True)

    server: str
    username: str
    key_id: str
    password: str  # ciphertext under `key_id`
    stored_at: str


class RegistriesState(StreamVersioned):
    """`stream_versions`: each registry-<server> stream's version; commands append with it."""

    registries: dict[str, Registry] = {}  # server -> its current credentials


STREAM_PREFIX = "registry-"


def stream_of(server: str) -> str:
    return STREAM_PREFIX + server


def _fold(state: RegistriesState, event: events.Event, at: events.Envelope) -> RegistriesState:
    match event:
        case events.RegistryCredentialsStored():
            registry = Registry(
                server=event.server,
                username=event.username,
                key_id=event.key_id,
                password=event.password,
                stored_at=at.recorded_at,
            )
            return state.model_copy(
                update={"registries": {**state.registries, event.server: registry}}
            )
        case events.RegistryCredentialsForgotten():
            kept = {k: v for k, v in state.registries.items() if k != event.server}
            return state.model_copy(update={"registries": kept})
    return state


apply = with_stream_versions(STREAM_PREFIX, _fold)

PROJECTION = Projection(name="registries", fold_version=1, state_type=RegistriesState, apply=apply)
