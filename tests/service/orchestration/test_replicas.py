"""The names DTMA gives its containers: one object, one name, whatever the ids."""

from __future__ import annotations

import itertools

from service.handling.commands import ID_PATTERN
from service.orchestration.replicas import container_name, init_container_name


def test_groups_and_servers_whose_ids_share_dashes_get_different_container_names() -> None:
    assert container_name("a-b", "c", 1) != container_name("a", "b-c", 1)
    assert init_container_name("g", "s", 1) != container_name("g", "s-init", 1)
    assert init_container_name("g", "s", 1) != init_container_name("g-s", "init", 1)


def test_no_two_replicas_or_init_containers_of_a_small_id_space_share_a_name() -> None:
    ids = ["a", "b", "a-b", "b-a", "a-b-c", "init", "s-init", "1", "init-1"]
    names: dict[str, tuple[object, ...]] = {}
    for group, server, n in itertools.product(ids, ids, (1, 2, 11)):
        for made, name in (
            (("replica", group, server, n), container_name(group, server, n)),
            (("init", group, server, n), init_container_name(group, server, n)),
        ):
            assert names.setdefault(name, made) == made, f"{name} names {names[name]} and {made}"
    assert "_" not in ID_PATTERN  # what keeps the parts apart
