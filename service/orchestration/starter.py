"""Starts one replica's container: its spec from the server's, env credentials decrypted for
it alone, configuration written in before it starts, init containers run first (once per
generation). Each step is recorded; a failed start leaves no container behind."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace

from eventstore import keyring
from projections import config, containers, credentials, events, groups, health, specs
from projections import runner as projections_runner
from service import container_policy, errors, loops
from service.docker import adapter, reach
from service.orchestration.action_log import ActionLog
from service.orchestration.images import ReplicaImages
from service.orchestration.replicas import (
    CREDENTIALS_LABEL,
    container_name,
    init_container_name,
    network_name,
)


class ReplicaStarter:
    def __init__(
        self,
        runner: projections_runner.ProjectionRunner,
        docker: adapter.DockerAdapter,
        log: ActionLog,
        backoff: loops.Backoff,
        removing: set[str],
        owner_labels: Mapping[str, str],
        ring: keyring.KeyRing | None,
        images: ReplicaImages,
        policy: container_policy.ContainerPolicy = container_policy.DEFAULT_POLICY,
    ) -> None:
        self._runner = runner
        self._docker = docker
        self._log = log
        self._backoff = backoff
        self._removing = removing  # the reconciler's: ids being removed on purpose
        self._owner_labels = dict(owner_labels)
        self._ring = ring
        self._images = images
        self._policy = policy
        self.reach = reach.HOST  # the reconciler's, once detected

    async def start(
        self,
        desired: groups.GroupsState,
        group: groups.GroupState,
        server: groups.ServerState,
        replica: int,
        successor: bool = False,
        image: str | None = None,
    ) -> bool:
        """Create, configure and start the replica's container from `image` (else the one
        pinned for its declaration); False (recorded, the container gone, a backoff begun) if
        the image cannot be had or Docker refused."""
        spec = server.spec
        if self._runner.state(health.PROJECTION).circuit(spec.id).state == "open":
            return False  # it opened while this pass was under way
        image = image or await self.image(server, [replica])
        if image is None:
            return False
        version, secret_env = await self._env_credentials(spec.id)
        container = self._container(desired, group, server, replica, version, secret_env)
        container = replace(container, image=image)
        if successor:  # it runs beside the replica's current container for a while
            container = replace(container, name=f"{container.name}-v{version or 0}")
        container_id: str | None = None
        try:
            container_id = await self._docker.create_container(container)
            await self._log.record(
                spec.id,
                events.ContainerCreated(
                    group_id=group.id,
                    server_id=spec.id,
                    replica=replica,
                    container_id=container_id,
                    name=container.name,
                    generation=server.generation,
                    credentials_version=version,
                ),
                server.changed_at,
            )
            await self._write_config(spec.id, replica, container_id)
            host_port = await self._docker.start_container(container_id)
        except errors.UnavailableError:
            raise
        except errors.ServiceError as exc:
            self._backoff.failed((spec.id, replica), _now())
            await self._log.record(
                spec.id,
                events.ContainerFailedToStart(
                    group_id=group.id,
                    server_id=spec.id,
                    replica=replica,
                    reason=exc.message,
                    container_id=container_id,
                ),
                server.changed_at,
            )
            if container_id is not None:
                self._removing.add(container_id)
                await self._docker.remove_container(container_id)
            return False
        host_port, address = await self._reached_at(container_id, host_port)
        await self._log.record(
            spec.id,
            events.ContainerStarted(
                server_id=spec.id,
                replica=replica,
                container_id=container_id,
                host_port=host_port,
                address=address,
            ),
            server.changed_at,
        )
        return True

    async def image(self, server: groups.ServerState, replicas: list[int]) -> str | None:
        """What the server's `replicas` are to be created from; None (recorded, their backoff
        begun) if it cannot be had: a failed pull is not a container failure."""
        image = await self._images.reference(server)
        if image is None:
            for replica in replicas:
                self._backoff.failed((server.spec.id, replica), _now())
        return image

    async def _reached_at(
        self, container_id: str, host_port: int | None
    ) -> tuple[int | None, str | None]:
        """(loopback port, address) to record for a started replica: in host reach its loopback
        port, or where nothing is published (an internal network, `publishPort: false`) its
        address on the group's network (its network mode, which `ip_address` prefers); in
        network reach that address always, and the port too if published."""
        if host_port is not None and not self.reach.network:
            return host_port, None
        return host_port, (await self._docker.inspect_container(container_id)).ip_address

    def _container(
        self,
        desired: groups.GroupsState,
        group: groups.GroupState,
        server: groups.ServerState,
        replica: int,
        version: int | None,
        secret_env: dict[str, str],
    ) -> adapter.ContainerSpec:
        labels = dict(self._owner_labels)
        if version is not None:
            labels[CREDENTIALS_LABEL] = str(version)
        made = replica_container(
            desired, group.id, server, replica, self._policy, labels, self.reach.network
        )
        return replace(made, env={**made.env, **secret_env})

    async def _write_config(self, server_id: str, replica: int, container_id: str) -> None:
        """The server's current configuration, into the container before it starts."""
        current = self._runner.state(config.PROJECTION).of(server_id).active()
        if current is None:
            return
        await self._docker.write_config(container_id, current.config)
        applied = events.ConfigApplied(
            server_id=server_id, version=current.version, replica=replica, container_id=container_id
        )
        await self._log.record(server_id, applied, cause=current.position)

    async def initialised(
        self, desired: groups.GroupsState, group: groups.GroupState, server: groups.ServerState
    ) -> bool:
        """Run the server's init containers, in order, once per generation; False on a failure.

        They run on the group's network with the server's environment and limits. A failure is
        recorded with the exit code and the tail of the log, and retried with backoff.
        """
        spec = server.spec
        done = self._runner.state(containers.PROJECTION).initialised.get(spec.id)
        if not spec.init_containers or done == server.generation:
            return True
        if not self._backoff.due((spec.id, 0), _now()):
            return False
        made = init_containers(desired, group.id, server, self._policy, self._owner_labels)
        for index, (init, container) in enumerate(
            zip(spec.init_containers, made, strict=True), start=1
        ):
            if not await self._images.init_image(server, index):
                self._backoff.failed((spec.id, 0), _now())
                return False
            try:
                code, output = await self._docker.run_container_to_completion(container)
            except errors.UnavailableError:
                raise
            except errors.ServiceError as exc:
                code, output = -1, exc.message
            if code != 0:
                self._backoff.failed((spec.id, 0), _now())
                tail = "\n".join(output.strip().splitlines()[-10:])
                await self._log.record(
                    spec.id,
                    events.ContainerFailedToStart(
                        group_id=group.id,
                        server_id=spec.id,
                        replica=1,
                        reason=f"init container {index} ({init.image}) exited with {code}: {tail}",
                    ),
                    server.generation,
                )
                return False
        await self._log.record(
            spec.id,
            events.InitContainerCompleted(
                group_id=group.id,
                server_id=spec.id,
                index=len(spec.init_containers),
                image=spec.init_containers[-1].image,
                generation=server.generation,
            ),
            server.generation,
        )
        return True

    async def _env_credentials(self, server_id: str) -> tuple[int | None, dict[str, str]]:
        """The current credential version and its `env` secrets, decrypted for this container
        only (they go nowhere else: not into the log, not into a label)."""
        active = self._runner.state(credentials.PROJECTION).of(server_id).active()
        if active is None or not active.env_secrets() or self._ring is None:
            return None, {}
        try:
            env = {
                s.name: (await self._ring.decrypt(active.key_id, s.ciphertext)).decode()
                for s in active.env_secrets()
            }
        except keyring.KeyringError:  # revoked meanwhile: start it without them
            return None, {}
        return active.version, env


def replica_container(
    desired: groups.GroupsState,
    group_id: str,
    server: groups.ServerState,
    replica: int,
    policy: container_policy.ContainerPolicy,
    labels: Mapping[str, str],
    network_reach: bool = False,
) -> adapter.ContainerSpec:
    """A replica's container as its spec, its group and the policy make it (credentials
    aside): everything a request can shape of it passes through here. Its port is published
    on the loopback as `publish_port` says, or else unless DTMA reaches it over the network
    (`network_reach`); fixed `host_ports` always are."""
    spec = server.spec
    limits = policy.limits(desired.limits_of(spec.id))
    own = {
        **labels,
        "dtma.group": group_id,
        "dtma.server": spec.id,
        "dtma.replica": str(replica),
        "dtma.generation": str(server.generation),
    }
    return adapter.ContainerSpec(
        name=container_name(group_id, spec.id, replica),
        image=spec.image,
        labels={**spec.labels, **own},  # a legacy tool's name; DTMA's own labels win
        env=dict(spec.env),
        # File credentials land on a tmpfs at /run/secrets (the adapter leaves it out for
        # images without /bin/sh, which only the archive API can write into).
        secrets_tmpfs=True,
        command=list(spec.command) if spec.command is not None else None,
        network=network_name(group_id),
        aliases=[spec.id],
        # a stdio server is reached through its stdin and stdout: no port, stdin kept open
        container_port=spec.port
        if spec.transport != "stdio" and _published(spec, network_reach)
        else None,
        open_stdin=spec.transport == "stdio",
        memory_mb=limits.memory_mb,
        cpus=limits.cpus,
        pids=limits.pids or specs.DEFAULT_PIDS,
        # a spec decided under a wider allow-list (or before there was one) gets no more than
        # the allow-list in force now
        cap_add=policy.granted_capabilities(spec.cap_add),
        host_ports=spec.host_ports,
    )


def _published(spec: specs.ServerSpec, network_reach: bool) -> bool:
    return spec.publish_port if spec.publish_port is not None else not network_reach


def init_containers(
    desired: groups.GroupsState,
    group_id: str,
    server: groups.ServerState,
    policy: container_policy.ContainerPolicy,
    labels: Mapping[str, str],
) -> list[adapter.ContainerSpec]:
    """The server's init containers, in order: on the group's network with the server's
    environment and limits, and no capability at all."""
    spec = server.spec
    limits = policy.limits(desired.limits_of(spec.id))
    return [
        adapter.ContainerSpec(
            name=init_container_name(group_id, spec.id, index),
            image=init.image,
            labels={
                **labels,
                "dtma.group": group_id,
                "dtma.server": spec.id,
                "dtma.init": str(index),
            },
            env=dict(spec.env),
            command=list(init.command) if init.command is not None else None,
            network=network_name(group_id),
            memory_mb=limits.memory_mb,
            cpus=limits.cpus,
            pids=limits.pids or specs.DEFAULT_PIDS,
        )
        for index, init in enumerate(spec.init_containers, start=1)
    ]


def _now() -> float:
    return asyncio.get_running_loop().time()
