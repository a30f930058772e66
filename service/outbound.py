"""Requests to URLs callers give the API (an OAuth `tokenEndpoint`): https only, and never to a
loopback, link-local, private, metadata or otherwise non-global address unless
DTMA_OUTBOUND_ALLOW names the host. The address is checked again as each connection resolves
it (a name may resolve elsewhere by then: DNS rebinding), and no redirect is followed."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# Cloud metadata services by name; by address they are link-local or private, refused anyway.
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "instance-data"})


class OutboundRefusedError(Exception):
    """A URL or address outbound requests may not reach; the message says why, not whether
    anything answers there."""


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """`allow`: host names, addresses or CIDR blocks exempt from every check."""

    allow: tuple[str, ...] = ()

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        address = _address(host)
        return host in self.allow or (address is not None and self.allows_address(address))

    def allows_address(self, address: Address) -> bool:
        for entry in self.allow:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue  # a host name
        return False

    def check_url(self, url: str) -> None:
        try:
            parsed = URL(url)
            parsed.port  # noqa: B018 - yarl checks the port only when asked
        except ValueError:
            raise OutboundRefusedError("not a valid URL") from None
        host = (parsed.raw_host or "").lower().rstrip(".")
        if not host:
            raise OutboundRefusedError("the URL names no host")
        if self.allows_host(host):
            return
        if parsed.scheme != "https":
            raise OutboundRefusedError("only https URLs may be reached (see DTMA_OUTBOUND_ALLOW)")
        if host == "localhost" or host.endswith(".localhost") or host in METADATA_NAMES:
            raise OutboundRefusedError(f"{host} may not be reached (see DTMA_OUTBOUND_ALLOW)")
        address = _address(host)
        if address is not None:
            self.check_address(address)

    def check_address(self, address: Address) -> None:
        if not_global(address) and not self.allows_address(address):
            raise OutboundRefusedError(
                "loopback, link-local, private and metadata addresses may not be reached "
                "(see DTMA_OUTBOUND_ALLOW)"
            )


def not_global(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global


class GuardedResolver(AbstractResolver):
    """Resolves as `inner` does, keeping only the addresses the policy lets a request reach:
    the connection is made to one of these, so the check holds at connect time."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if self._policy.allows_host(host):
            return found
        kept = [a for a in found if not self._refused(a["host"])]
        if not kept:
            raise OSError(f"{host} resolves to no address outbound requests may reach")
        return kept

    def _refused(self, host: str) -> bool:
        address = _address(host)
        if address is None:
            return True
        try:
            self._policy.check_address(address)
        except OutboundRefusedError:
            return True
        return False

    async def close(self) -> None:
        await self._inner.close()


def session(policy: OutboundPolicy, inner: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """A session whose every connection goes only where `policy` allows (redirects are the
    caller's to refuse: pass `allow_redirects=False`)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy, inner))
    return aiohttp.ClientSession(connector=connector)
