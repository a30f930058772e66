"""The MCP vocabulary (events) and the pure folds that build read models from the log."""

from typing import Any

from projections import (
    config,
    containers,
    credentials,
    events,
    groups,
    health,
    images,
    registries,
)
from projections.folds import Projection
from projections.runner import FoldSet, ProjectionRunner, fold_log

ALL: tuple[Projection[Any], ...] = (
    health.PROJECTION,
    groups.PROJECTION,
    containers.PROJECTION,
    credentials.PROJECTION,
    config.PROJECTION,
    images.PROJECTION,
    registries.PROJECTION,
)

__all__ = [
    "config",
    "containers",
    "credentials",
    "ALL",
    "FoldSet",
    "Projection",
    "ProjectionRunner",
    "events",
    "fold_log",
    "groups",
    "health",
    "images",
    "registries",
]
