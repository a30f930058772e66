"""Commands as they arrive over HTTP: camelCase on the wire, unknown fields refused, strict."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
ResourceId = Annotated[str, Field(pattern=ID_PATTERN)]


class Command(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", frozen=True, strict=True, populate_by_name=False
    )


class ConfigureBreaker(Command):
    """POST /health/circuit-breaker: without `mcpServerId` it sets the default for all."""

    mcp_server_id: ResourceId | None = None
    failure_threshold: Annotated[int, Field(ge=1, le=1000)] | None = None
    recovery_threshold: Annotated[int, Field(ge=1, le=1000)] | None = None
    open_timeout: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    circuit_breaker_enabled: bool | None = None
