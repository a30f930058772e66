"""What any request may make of a container, whatever its shape: the capabilities it may add,
the limits it gets when it names none, how many containers the host runs. Pure values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from projections import specs

# What an MCP server can plausibly need: bind a low port, manage its own files and users,
# signal its children, ping. Nothing that reaches the kernel or the host's files.
DEFAULT_CAPABILITIES = frozenset(
    {"NET_BIND_SERVICE", "CHOWN", "SETUID", "SETGID", "FOWNER", "DAC_OVERRIDE", "KILL", "NET_RAW"}
)
DEFAULT_MEMORY_MB = 512
DEFAULT_CPUS = 1.0
DEFAULT_MAX_CONTAINERS = 200


def never_granted(name: str) -> bool:
    """`ALL` and the `SYS_*` family: no setting widens the allow-list to these. (Docker takes
    any case and an optional `CAP_`, so this does too.)"""
    bare = name.upper().removeprefix("CAP_")
    return bare == "ALL" or bare.startswith("SYS_")


@dataclass(frozen=True, slots=True)
class ContainerPolicy:
    allowed_capabilities: frozenset[str] = DEFAULT_CAPABILITIES
    default_memory_mb: int = DEFAULT_MEMORY_MB
    default_cpus: float = DEFAULT_CPUS
    max_containers: int = DEFAULT_MAX_CONTAINERS

    def refused_capabilities(self, names: Iterable[str]) -> list[str]:
        """The names of `names` off the allow-list, in order."""
        return [n for n in names if never_granted(n) or n not in self.allowed_capabilities]

    def granted_capabilities(self, names: Iterable[str]) -> list[str]:
        """`names` less any refused one: what a container of an older, wider spec still gets."""
        refused = set(self.refused_capabilities(names))
        return [n for n in names if n not in refused]

    def limits(self, limits: specs.Limits) -> specs.Limits:
        """`limits` with the defaults where neither the server nor its group set one."""
        return limits.over(specs.Limits(memory_mb=self.default_memory_mb, cpus=self.default_cpus))


DEFAULT_POLICY = ContainerPolicy()  # the service itself uses the one its settings make
