"""Outbound requests: which URLs and addresses the policy refuses, the check made again on the
address a connection resolves to (DNS rebinding), and the API refusing such a tokenEndpoint."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient

from service import outbound
from service.app import create_app
from service.outbound import OutboundPolicy, OutboundRefusedError
from service.settings import Settings
from tests.conftest import AUTH
from tests.support.api import error_of

Client: TypeAlias = TestClient[web.Request, web.Application]


@pytest.mark.parametrize(
    "url",
    [
        "http://auth.example.com/token",  # not https
        "https://127.0.0.1:30000/metrics",
        "https://127.1.2.3/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fe80::1]/",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://100.100.100.200/",  # a metadata address in the shared range
        "https://0.0.0.0/",
        "https://localhost/",
        "https://api.localhost/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://[::1",  # not a URL at all
        "https://example.com:99999/",
    ],
)
def test_refuses_plain_http_and_every_non_global_address(url: str) -> None:
    with pytest.raises(OutboundRefusedError):
        OutboundPolicy().check_url(url)


@pytest.mark.parametrize("url", ["https://auth.example.com/token", "https://8.8.8.8/token"])
def test_lets_https_to_global_hosts_pass(url: str) -> None:
    OutboundPolicy().check_url(url)


def test_dtma_outbound_allow_names_hosts_addresses_or_blocks() -> None:
    policy = OutboundPolicy(("127.0.0.1", "idp.internal", "10.0.0.0/8"))

    policy.check_url("http://127.0.0.1:8080/token")
    policy.check_url("http://idp.internal/token")
    policy.check_url("https://10.9.8.7/token")
    with pytest.raises(OutboundRefusedError):
        policy.check_url("https://192.168.1.1/token")


class Rebinding(AbstractResolver):
    """A name server whose answer now is loopback, whatever it said before."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A loopback port that counts the connections made to it."""
    connections: list[int] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, connections
    finally:
        server.close()
        await server.wait_closed()


async def test_a_name_resolving_to_loopback_at_connect_time_is_not_connected_to(
    listener: tuple[int, list[int]],
) -> None:
    port, connections = listener
    url = f"https://idp.example.com:{port}/token"
    OutboundPolicy().check_url(url)  # the name itself passes

    async with outbound.session(OutboundPolicy(), inner=Rebinding()) as session:
        with pytest.raises(aiohttp.ClientConnectorDNSError):
            await session.post(url, allow_redirects=False)
    assert connections == []

    # The same request without the guard does connect: the test can see a connection.
    connector = aiohttp.TCPConnector(resolver=Rebinding())
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientError):
            await session.post(url, allow_redirects=False)
    assert connections


def oauth_body(endpoint: str) -> dict[str, Any]:
    provider = {
        "provider": "github",
        "clientId": "c",
        "clientSecret": "s",
        "tokenEndpoint": endpoint,
        "refreshToken": "r",
    }
    return {
        "mcpServerId": "oauthy",
        "agentId": "a",
        "credentials": {"oauthProviders": [provider]},
    }


async def inject(client: Client, endpoint: str) -> aiohttp.ClientResponse:
    deploy = {"groupId": "oauthy", "mcpServers": [{"id": "oauthy", "image": "x:1", "replicas": 0}]}
    assert (await client.post("/mcp-servers/deploy", json=deploy, headers=AUTH)).status == 202
    return await client.post("/credentials/inject", json=oauth_body(endpoint), headers=AUTH)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:30000/metrics",
        "https://127.0.0.1:30000/metrics",
        "https://169.254.169.254/latest/meta-data/iam/",
        "https://10.0.0.5/token",
    ],
)
async def test_the_api_refuses_a_token_endpoint_it_may_not_reach(
    client: Client, endpoint: str
) -> None:
    error = await error_of(await inject(client, endpoint), 422)

    assert error["details"][0]["field"] == "credentials.oauthProviders.0.tokenEndpoint"


async def test_the_api_accepts_a_loopback_token_endpoint_the_operator_allows(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(outbound_allow=("127.0.0.1",))))

    response = await inject(client, "http://127.0.0.1:30000/token")

    assert response.status == 202, await response.text()
