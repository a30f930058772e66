"""A server's status while its image pulls, and after a pull failed: from the read models
and the puller's in-memory progress."""

from __future__ import annotations

from dataclasses import replace

from projections import containers, events, groups, health, images, specs
from service import status
from tests.projections.folding import fold_facts


def models() -> status.ReadModels:
    declared = events.ServerDeclared(
        group_id="g", spec=specs.ServerSpec(id="s", image="reg:5000/s:v1", replicas=2)
    )
    desired = fold_facts(
        groups.PROJECTION,
        [("group-g", events.GroupDeclared(group_id="g", name="g")), ("group-g", declared)],
        "T",
    )
    return status.ReadModels(desired, containers.ContainersState(), health.HealthState())


def test_replicas_waiting_for_their_image_are_pulling_with_its_bytes() -> None:
    pulling = replace(models(), pulling={"s": (1024, 4096)})

    found = status.server_status(pulling, "s").wire()

    assert [(i["replica"], i["state"]) for i in found["instances"]] == [
        (1, "pulling"),
        (2, "pulling"),
    ]
    assert found["instances"][0]["pullBytesDone"] == 1024
    assert found["instances"][0]["pullBytesTotal"] == 4096
    assert status.server_status(models(), "s").instances == []


def test_a_failed_pull_of_the_current_generation_fails_the_server_with_its_reason() -> None:
    generation = models().desired.servers["s"].generation
    failure = events.ImagePullFailed(
        server_id="s", generation=generation, image="reg:5000/s:v1", reason="unauthorized"
    )
    failed = fold_facts(images.PROJECTION, [("server-s", failure)], "T")

    found = status.server_status(replace(models(), images=failed), "s").wire()

    assert found["status"] == "failed" and found["reason"] == "unauthorized"
    assert found["imageDigest"] is None
