"""Pure decisions: current state and a command in, the events to append out. No I/O."""

from __future__ import annotations

from projections import dependencies, events, groups, health, specs
from service import container_policy, errors
from service.handling import commands


def configure_breaker(
    current: health.BreakerSettings, command: commands.ConfigureBreaker
) -> events.CircuitBreakerConfigured:
    """The scope's settings after the command: given fields replace, omitted ones stay."""
    changes = {
        "failure_threshold": command.failure_threshold,
        "recovery_threshold": command.recovery_threshold,
        "open_timeout_ms": command.open_timeout,
        "enabled": command.circuit_breaker_enabled,
    }
    merged = current.model_dump() | {k: v for k, v in changes.items() if v is not None}
    return events.CircuitBreakerConfigured(mcp_server_id=command.mcp_server_id, **merged)


def deploy_group(
    state: groups.GroupsState,
    command: commands.DeployGroup,
    policy: container_policy.ContainerPolicy = container_policy.DEFAULT_POLICY,
) -> list[events.Event]:
    """Declare the group (if new or re-configured) and every server of the spec."""
    _refuse_duplicate_ids(command)
    _refuse_capabilities(command, policy)
    refuse_over_capacity(state, {s.id: s.replicas for s in command.mcp_servers}, policy)
    _refuse_ids_of_other_groups(state, command.group_id, [s.id for s in command.mcp_servers])
    _refuse_unknown_or_cyclic_dependencies(state, command)
    declared: list[events.Event] = []
    group = state.groups.get(command.group_id)
    if group is None or command.network_config or command.resource_limits:
        declared.append(_declare_group(group, command.group_id, None, command))
    declared.extend(
        events.ServerDeclared(group_id=command.group_id, spec=server_spec(s))
        for s in command.mcp_servers
    )
    return declared


def create_group(state: groups.GroupsState, command: commands.CreateGroup) -> events.GroupDeclared:
    if command.id in state.groups:
        raise errors.ConflictError(
            f"container group {command.id!r} exists already", code="id_in_use"
        )
    return _declare_group(None, command.id, command.name, command)


def scale_server(
    state: groups.GroupsState,
    command: commands.ScaleServer,
    policy: container_policy.ContainerPolicy = container_policy.DEFAULT_POLICY,
) -> events.ReplicasScaled:
    server = _known_server(state, command.mcp_server_id)
    refuse_over_capacity(state, {command.mcp_server_id: command.replicas}, policy)
    return events.ReplicasScaled(
        group_id=server.group_id, server_id=command.mcp_server_id, replicas=command.replicas
    )


def remove_server(
    state: groups.GroupsState, command: commands.RemoveServer
) -> events.ServerRemoved:
    server = _known_server(state, command.mcp_server_id)
    return events.ServerRemoved(group_id=server.group_id, server_id=command.mcp_server_id)


def remove_group(state: groups.GroupsState, command: commands.RemoveGroup) -> events.GroupRemoved:
    _known_group(state, command.group_id)
    return events.GroupRemoved(group_id=command.group_id)


def restart_group(
    state: groups.GroupsState, command: commands.RestartGroup
) -> events.GroupRestartRequested:
    group = _known_group(state, command.group_id)
    graph = {s: state.servers[s].spec.depends_on for s in group.servers}
    return events.GroupRestartRequested(
        group_id=command.group_id, order=tuple(dependencies.start_order(graph))
    )


def server_spec(spec: commands.McpServerSpec) -> specs.ServerSpec:
    """The wire form of a server as the event records it."""
    check = spec.health_check
    return specs.ServerSpec(
        id=spec.id,
        image=spec.image,
        image_pull_policy=spec.image_pull_policy,
        command=tuple(spec.command) if spec.command is not None else None,
        env=dict(spec.env),
        port=spec.port,
        transport=spec.transport,
        path=spec.path,
        replicas=spec.replicas,
        depends_on=tuple(spec.depends_on),
        limits=_limits(spec.resource_limits),
        health_check=specs.HealthCheck(
            type=check.type,
            url=check.health_check_url,
            interval_ms=check.health_check_interval,
            timeout_ms=check.health_check_timeout,
            failure_threshold=check.failure_threshold,
            recovery_threshold=check.recovery_threshold,
            start_period_ms=check.start_period,
            circuit_breaker_enabled=check.circuit_breaker_enabled,
        ),
        credential_requirements=tuple(
            specs.CredentialRequirement(name=r.name, mode=r.mode)
            for r in spec.credential_requirements
        ),
        init_containers=tuple(
            specs.InitContainer(
                image=i.image,
                command=tuple(i.command) if i.command is not None else None,
                image_pull_policy=i.image_pull_policy,
            )
            for i in spec.init_containers
        ),
        cap_add=tuple(spec.cap_add),
        reload_signal=spec.reload_signal,
        publish_port=spec.publish_port,
    )


def _declare_group(
    group: groups.GroupState | None,
    group_id: str,
    name: str | None,
    command: commands.DeployGroup | commands.CreateGroup,
) -> events.GroupDeclared:
    internal = command.network_config.internal if command.network_config else False
    if group is not None and command.network_config and group.internal != internal:
        raise errors.ConflictError(
            f"the network of group {group_id!r} cannot change from internal={group.internal};"
            " remove the group and deploy it again",
            code="network_change_refused",
        )
    return events.GroupDeclared(
        group_id=group_id,
        name=name or (group.name if group else group_id),
        internal=group.internal if group and not command.network_config else internal,
        limits=_limits(command.resource_limits) or (group.limits if group else None),
    )


def _limits(limits: commands.ResourceLimits | None) -> specs.Limits | None:
    if limits is None:
        return None
    return specs.Limits(memory_mb=limits.memory_mb, cpus=limits.cpus, pids=limits.pids)


def _refuse_duplicate_ids(command: commands.DeployGroup) -> None:
    seen: set[str] = set()
    details = []
    for index, server in enumerate(command.mcp_servers):
        if server.id in seen:
            details.append({"field": f"mcpServers.{index}.id", "message": "declared twice"})
        seen.add(server.id)
    if details:
        raise errors.ValidationFailedError("MCP server ids must be unique", details=details)


def _refuse_capabilities(
    command: commands.DeployGroup, policy: container_policy.ContainerPolicy
) -> None:
    refused = [
        (f"mcpServers.{i}.capAdd.{j}", name)
        for i, server in enumerate(command.mcp_servers)
        for j, name in enumerate(server.cap_add)
        if policy.refused_capabilities([name])
    ]
    if refused:
        raise errors.ValidationFailedError(
            "capabilities not allowed: " + ", ".join(sorted({name for _, name in refused})),
            details=[
                {"field": field, "message": f"{name} is not on the allow-list of capabilities"}
                for field, name in refused
            ],
        )


def refuse_over_capacity(
    state: groups.GroupsState, wanted: dict[str, int], policy: container_policy.ContainerPolicy
) -> None:
    """409 when the replicas `wanted` (server id -> count) would take the host's managed
    containers past the cap. Counted from the desired state, not from Docker: the replicas
    every server should have. A change that adds none is never refused, so an operator over
    the cap (a cap lowered after the fact) can still scale down."""
    now = sum(s.replicas for s in state.servers.values())
    after = now + sum(n - _replicas(state, s) for s, n in wanted.items())
    if after > policy.max_containers and after > now:
        raise errors.ConflictError(
            f"this would run {after} containers; the host's cap is {policy.max_containers}"
            " (DTMA_MAX_CONTAINERS)",
            code="capacity_exceeded",
            details=[{"requested": after, "limit": policy.max_containers}],
        )


def _replicas(state: groups.GroupsState, server_id: str) -> int:
    server = state.servers.get(server_id)
    return server.replicas if server else 0


def _refuse_ids_of_other_groups(
    state: groups.GroupsState, group_id: str, server_ids: list[str]
) -> None:
    taken = [
        (s, state.group_of(s)) for s in server_ids if state.group_of(s) not in (None, group_id)
    ]
    if taken:
        raise errors.ConflictError(
            "MCP server ids already belong to another group",
            code="id_in_use",
            details=[{"mcpServerId": s, "groupId": g} for s, g in taken],
        )


def _refuse_unknown_or_cyclic_dependencies(
    state: groups.GroupsState, command: commands.DeployGroup
) -> None:
    group = state.groups.get(command.group_id)
    graph = {s: state.servers[s].spec.depends_on for s in (group.servers if group else ())}
    graph.update({s.id: tuple(s.depends_on) for s in command.mcp_servers})
    details = [
        {"field": f"mcpServers.{i}.dependsOn", "message": f"no server {d!r} in group"}
        for i, s in enumerate(command.mcp_servers)
        for d in s.depends_on
        if d not in graph
    ]
    if details:
        raise errors.ValidationFailedError(
            "dependencies must be servers of the group", details=details
        )
    cycle = dependencies.find_cycle(graph)
    if cycle:
        raise errors.ValidationFailedError(
            "dependencies form a cycle: " + " -> ".join(cycle),
            details=[{"field": "mcpServers", "message": "cycle " + " -> ".join(cycle)}],
        )


def _known_server(state: groups.GroupsState, server_id: str) -> groups.ServerState:
    server = state.servers.get(server_id)
    if server is None:
        raise errors.NotFoundError(f"no MCP server {server_id!r}")
    return server


def _known_group(state: groups.GroupsState, group_id: str) -> groups.GroupState:
    group = state.groups.get(group_id)
    if group is None:
        raise errors.NotFoundError(f"no container group {group_id!r}")
    return group
