"""Which image a server's replicas are created from: the digest pinned when it was declared (so
a scale-up, a replacement or a restart runs the same bits after the tag moved), resolved and
recorded once per declaration, or at every start under `Always`. A failed pull is recorded."""

from __future__ import annotations

from projections import events, groups, images
from projections.runner import ProjectionRunner
from service.docker import adapter, errors
from service.docker import images as references
from service.orchestration.action_log import ActionLog
from service.registries import pulls


class ReplicaImages:
    def __init__(
        self,
        runner: ProjectionRunner,
        docker: adapter.DockerAdapter,
        puller: pulls.ImagePuller,
        log: ActionLog,
    ) -> None:
        self._runner = runner
        self._docker = docker
        self._puller = puller
        self._log = log

    async def reference(self, server: groups.ServerState) -> str | None:
        """What the server's replicas are created from now; None (recorded) if it cannot be
        had, to be tried again after a backoff."""
        spec = server.spec
        try:
            return await self._resolved(server)
        except errors.ImagePullError as exc:
            failed = events.ImagePullFailed(
                server_id=spec.id,
                generation=server.declared_generation,
                image=spec.image,
                reason=exc.message,
            )
            await self._log.record(spec.id, failed, server.changed_at)
            return None

    async def init_image(self, server: groups.ServerState, index: int) -> bool:
        """Whether the server's init container `index` (from 1) has its image, pulled as its
        policy says; a failure is recorded."""
        init = server.spec.init_containers[index - 1]
        try:
            await self._puller.ensure(
                init.image,
                init.image_pull_policy,
                server.spec.id,
                self._started(server, init.image),
            )
        except errors.ImagePullError as exc:
            failed = events.ImagePullFailed(
                server_id=server.spec.id,
                generation=server.declared_generation,
                image=init.image,
                reason=exc.message,
            )
            await self._log.record(server.spec.id, failed, server.generation)
            return False
        return True

    async def _resolved(self, server: groups.ServerState) -> str:
        spec = server.spec
        policy = spec.image_pull_policy
        pin = self._runner.state(images.PROJECTION).pin(
            spec.id, server.declared_generation, spec.image
        )
        if pin is not None and policy != "Always":
            # the pinned bits, pulled again by digest if they left this host
            await self._puller.ensure(
                pin.reference, policy, spec.id, self._started(server, pin.reference)
            )
            return pin.reference
        image, pulled = await self._puller.ensure(
            spec.image, policy, spec.id, self._started(server, spec.image)
        )
        digest, reference = references.digest_of(image, spec.image)
        if pin is None or pin.digest != digest:
            pinned = events.ImagePulled(
                server_id=spec.id,
                generation=server.declared_generation,
                image=spec.image,
                digest=digest,
                reference=reference,
                pulled=pulled,
            )
            await self._log.record(spec.id, pinned, server.changed_at)
        return reference

    def _started(self, server: groups.ServerState, image: str) -> pulls.Started:
        """Records that a pull of `image` for the server begins: appended before the pull,
        so an auditor sees every pull, even one whose result DTMA never got to record."""

        async def record() -> None:
            started = events.ImagePullStarted(
                server_id=server.spec.id,
                generation=server.declared_generation,
                image=image,
            )
            await self._log.record(server.spec.id, started, server.changed_at)

        return record
