"""Observed state: each server's replicas as Docker has run them, and each group's network.

A pure fold of what the reconciler did and what the Docker listener saw.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from projections import events
from projections.folds import Projection

State = Literal["created", "running", "exited", "failed"]

STREAM_PREFIX = "server-"  # server-<server id>: what was done to and seen of its containers


def stream_of(server_id: str) -> str:
    return STREAM_PREFIX + server_id


class Instance(BaseModel):
    model_config = ConfigDict(frozen=True)

    replica: int
    container_id: str | None
    container_name: str | None
    state: State
    generation: int = 0
    credentials_version: int | None = None
    host_port: int | None = None
    address: str | None = None
    started_at: str | None = None
    started_position: int | None = None  # of its ContainerStarted: what its probes follow from
    restart_count: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    reason: str | None = None


class ContainersState(BaseModel):
    model_config = ConfigDict(frozen=True)

    # server id -> replica number -> instance
    instances: dict[str, dict[int, Instance]] = {}
    networks: dict[str, str] = {}  # group id -> network name
    # server id -> replica number -> how often it was started, across replacements
    starts: dict[str, dict[int, int]] = {}
    # server id -> the generation whose init containers have all completed
    initialised: dict[str, int] = {}

    def of(self, server_id: str) -> list[Instance]:
        return [i for _, i in sorted(self.instances.get(server_id, {}).items())]

    def container_ids(self) -> set[str]:
        """Every container the log has recorded as a replica, as it stands now."""
        return {
            i.container_id for r in self.instances.values() for i in r.values() if i.container_id
        }


def apply(state: ContainersState, event: events.Event, at: events.Envelope) -> ContainersState:
    match event:
        case events.NetworkCreated():
            return state.model_copy(
                update={"networks": {**state.networks, event.group_id: event.network}}
            )
        case events.NetworkRemoved():
            networks = {k: v for k, v in state.networks.items() if k != event.group_id}
            return state.model_copy(update={"networks": networks})
        case events.ContainerCreated():
            created = Instance(
                replica=event.replica,
                container_id=event.container_id,
                container_name=event.name,
                state="created",
                generation=event.generation,
                credentials_version=event.credentials_version,
                restart_count=_restarts(state, event.server_id, event.replica),
            )
            return _put(state, event.server_id, created)
        case events.ContainerStarted():
            counted = _count_start(state, event.server_id, event.replica)
            return _change(
                counted,
                event.server_id,
                event.replica,
                event.container_id,
                {
                    "state": "running",
                    "restart_count": _restarts(counted, event.server_id, event.replica),
                    "host_port": event.host_port,
                    "address": event.address,
                    "started_at": at.recorded_at,
                    "started_position": at.position,
                    "exit_code": None,
                    "oom_killed": False,
                },
            )
        case events.ContainerDied():
            return _change(
                state,
                event.server_id,
                event.replica,
                event.container_id,
                {"state": "exited", "exit_code": event.exit_code, "oom_killed": event.oom_killed},
            )
        case events.ContainerFailedToStart():
            failed = Instance(
                replica=event.replica,
                container_id=event.container_id,
                container_name=None,
                state="failed",
                reason=event.reason,
            )
            return _put(state, event.server_id, failed)
        case events.ContainerRemoved():
            current = _instance(state, event.server_id, event.replica)
            if current is None or current.container_id != event.container_id:
                return state
            replicas = {
                k: v for k, v in state.instances[event.server_id].items() if k != event.replica
            }
            return state.model_copy(
                update={"instances": {**state.instances, event.server_id: replicas}}
            )
        case events.InitContainerCompleted():
            return state.model_copy(
                update={"initialised": {**state.initialised, event.server_id: event.generation}}
            )
        case events.ServerRemoved():
            instances = {k: v for k, v in state.instances.items() if k != event.server_id}
            starts = {k: v for k, v in state.starts.items() if k != event.server_id}
            return state.model_copy(update={"instances": instances, "starts": starts})
    return state


def _instance(state: ContainersState, server_id: str, replica: int) -> Instance | None:
    return state.instances.get(server_id, {}).get(replica)


def _restarts(state: ContainersState, server_id: str, replica: int) -> int:
    """Starts of this replica beyond the first, whichever container it ran in."""
    return max(state.starts.get(server_id, {}).get(replica, 0) - 1, 0)


def _count_start(state: ContainersState, server_id: str, replica: int) -> ContainersState:
    counts = dict(state.starts.get(server_id, {}))
    counts[replica] = counts.get(replica, 0) + 1
    return state.model_copy(update={"starts": {**state.starts, server_id: counts}})


def _put(state: ContainersState, server_id: str, instance: Instance) -> ContainersState:
    replicas = {**state.instances.get(server_id, {}), instance.replica: instance}
    return state.model_copy(update={"instances": {**state.instances, server_id: replicas}})


def _change(
    state: ContainersState,
    server_id: str,
    replica: int,
    container_id: str,
    changes: dict[str, object],
) -> ContainersState:
    current = _instance(state, server_id, replica)
    if current is None or current.container_id != container_id:
        return state  # a fact about a container that is no longer this replica's
    return _put(state, server_id, current.model_copy(update=changes))


PROJECTION = Projection(name="containers", fold_version=3, state_type=ContainersState, apply=apply)
