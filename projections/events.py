"""The MCP vocabulary: every event type DTMA records, registered into the store's catalogue.

Events are frozen pydantic models named in the past tense for what is true once appended.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from eventstore.catalogue import Catalogue


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, slots=True)
class Envelope:
    """Where an event sits in the log, for folds that record positions or times."""

    position: int
    stream_id: str
    version: int
    recorded_at: str


class CircuitBreakerConfigured(Event):
    """The breaker settings of one MCP server (or, with no server, the default for all) are now
    these; a field left None inherits (a server's from the default, the default's built-in)."""

    mcp_server_id: str | None = None
    failure_threshold: int | None = Field(default=None, ge=1)
    recovery_threshold: int | None = Field(default=None, ge=1)
    open_timeout_ms: int | None = Field(default=None, ge=0)
    enabled: bool | None = None


CATALOGUE = Catalogue()
CATALOGUE.register(CircuitBreakerConfigured)
