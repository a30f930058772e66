"""This DTMA's identity: an id made at its first start and kept in its database, so that the
same database gives the same id after a crash, and two instances on one engine never take
each other's containers for their own."""

from __future__ import annotations

from collections.abc import Mapping

from eventstore import identity
from eventstore import store as eventstore_store

LABEL = "dtma.instance"


async def identify(store: eventstore_store.EventStore) -> str:
    """This instance's id: made at the first start on a database, then read back."""
    return await identity.identity(store.engine, "instance")


def belongs(labels: Mapping[str, str], instance_id: str, recorded: bool) -> bool:
    """Whether a managed Docker object is this instance's: it carries this instance's label,
    or it carries none (made before instances had ids) and this instance's log recorded it."""
    owner = labels.get(LABEL)
    return owner == instance_id if owner is not None else recorded
