"""The legacy routes' answers, as pydantic models: the original's envelope and snake_case."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ToolState = Literal["pending", "starting", "running", "stopping", "stopped", "error"]


class LegacyAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_by_name=True)


class LegacyFailure(LegacyAnswer):
    """Every refusal of a legacy route, authentication's included."""

    success: Literal[False]
    error: str


class HostBinding(LegacyAnswer):
    host_ip: str = Field(alias="HostIp")
    host_port: str = Field(alias="HostPort")


class ToolCreatedData(LegacyAnswer):
    container_id: str | None
    instance_name_on_toolbox: str
    account_tool_instance_id: str | None
    image: str
    ports: dict[str, list[HostBinding]] = Field(description='Docker\'s shape: {"8080/tcp": [...]}')
    state: ToolState


class ToolCreated(LegacyAnswer):
    success: Literal[True]
    message: str
    data: ToolCreatedData


class ToolRemoved(LegacyAnswer):
    success: Literal[True]
    message: str


class ToolStateData(LegacyAnswer):
    state: ToolState


class ToolScaled(LegacyAnswer):
    success: Literal[True]
    message: str
    data: ToolStateData


class Memory(LegacyAnswer):
    total_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None


class Disk(LegacyAnswer):
    mount: str
    total_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None


class SystemMetrics(LegacyAnswer):
    cpu_load_percent: float | None
    memory: Memory
    disk: Disk
    uptime_seconds: float | None


class ToolInstance(LegacyAnswer):
    container_id: str | None
    instance_name_on_toolbox: str
    account_tool_instance_id: str | None
    image: str
    status: ToolState
    created: str | None


class HostOverview(LegacyAnswer):
    """`version` and `environment` repeat `dtma_version` and `system_metrics`."""

    dtma_version: str
    version: str
    instance: str = Field(description="this DTMA's id (as in GET /healthz)")
    system_metrics: SystemMetrics
    environment: SystemMetrics
    tool_instances: list[ToolInstance]
