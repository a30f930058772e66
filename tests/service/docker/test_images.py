"""Image references: parsed as Docker parses them, and never an image-id prefix."""

from __future__ import annotations

import secrets

import pytest

from service.docker import errors, images
from service.docker.adapter import ContainerSpec, DockerAdapter
from tests.support.docker import run_labels
from tests.support.images import ensure_commandless_image

DIGEST = "sha256:" + "ab" * 32
IMAGE_ID = "sha256:" + "0c" * 32


@pytest.mark.parametrize(
    ("reference", "name", "tag", "digest"),
    [
        ("ubuntu", "docker.io/library/ubuntu", "latest", None),
        ("mcp/fetch:1.2", "docker.io/mcp/fetch", "1.2", None),
        ("127.0.0.1:5000/team/server:v1", "127.0.0.1:5000/team/server", "v1", None),
        (f"localhost/server@{DIGEST}", "localhost/server", None, DIGEST),
        (f"ghcr.io/a/b:c@{DIGEST}", "ghcr.io/a/b", "c", DIGEST),
    ],
)
def test_references_parse_as_docker_reads_them(
    reference: str, name: str, tag: str | None, digest: str | None
) -> None:
    parsed = images.parse(reference)
    assert (parsed.name, parsed.tag, parsed.digest) == (name, tag, digest)


def test_an_image_is_found_by_its_tags_digests_or_whole_id_but_not_an_id_prefix() -> None:
    image = {
        "Id": IMAGE_ID,
        "RepoTags": ["ubuntu:latest"],
        "RepoDigests": [f"ubuntu@{DIGEST}"],
    }
    for reference in ("ubuntu", "docker.io/library/ubuntu:latest", f"ubuntu@{DIGEST}", IMAGE_ID):
        assert images.matches(image, reference), reference
    for reference in ("0", "0c0c", IMAGE_ID[7:19], "ubuntu:22.04", "other"):
        assert not images.matches(image, reference), reference


def test_the_pinned_reference_names_the_registry_digest_or_else_the_id() -> None:
    pulled = {"Id": IMAGE_ID, "RepoDigests": [f"127.0.0.1:5000/s@{DIGEST}"]}
    assert images.digest_of(pulled, "127.0.0.1:5000/s:v1") == (
        DIGEST,
        f"127.0.0.1:5000/s@{DIGEST}",
    )
    assert images.digest_of({"Id": IMAGE_ID}, "built-here:1") == (IMAGE_ID, IMAGE_ID)


@pytest.mark.docker
async def test_a_prefix_of_an_images_id_finds_nothing(
    docker: DockerAdapter, mcp_image: str
) -> None:
    image_id = str((await docker.inspect_image(mcp_image))["Id"])
    assert await docker.image_exists(mcp_image)
    assert await docker.image_exists(image_id)
    prefix = image_id[7:19]  # long enough to be unambiguous on any engine
    assert await docker.inspect_image(prefix)  # Docker's own lookup matches it...
    assert not await docker.image_exists(prefix)  # ...a reference does not
    assert not await docker.image_exists(image_id[7])


@pytest.mark.docker
async def test_an_image_docker_cannot_make_a_container_of_is_a_422_naming_it(
    docker: DockerAdapter,
) -> None:
    image = await ensure_commandless_image(docker)
    spec = ContainerSpec(
        name=f"dtma-refused-{secrets.token_hex(3)}", image=image, labels=run_labels()
    )

    with pytest.raises(errors.ImageRefusedError) as refused:
        await docker.create_container(spec)

    assert refused.value.status == 422 and image in refused.value.message
    assert "No command specified" in refused.value.message
