"""The outbound client to the Agentopia backend: JSON over POST with a bearer token, a timeout
and retries with backoff. It knows nothing of what it sends (heartbeats, credential requests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from service import loops

DEFAULT_TIMEOUT_S = 15.0


class BackendError(Exception):
    """A call to the backend failed. The message names the path and the status code or the
    kind of failure, never the token, the payload or the answer's body."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        """A connection failure, a timeout, a 5xx, 408 or 429; other refusals will not change."""
        return self.status is None or self.status >= 500 or self.status in (408, 429)


class BackendClient:
    """POSTs JSON to `base_url` + path. The session is the caller's: the client neither opens
    nor closes it, so one session (the app's cleanup context) serves every outbound call."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def post(self, path: str, payload: Mapping[str, Any]) -> Any:
        """The decoded JSON answer (None for an empty body) to one POST of `payload`.

        Raises:
            BackendError: on a status other than 2xx, a connection failure, a timeout after
                `timeout_s` (15 s unless told otherwise) or an answer that is not JSON.
        """
        # `from None` throughout: aiohttp's exceptions carry the request's headers (the token)
        # and a decoding error carries the answer's text (credentials, for some paths).
        try:
            async with self._session.post(
                f"{self._base_url}/{path.lstrip('/')}",
                json=dict(payload),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            ) as response:
                if not 200 <= response.status < 300:
                    raise BackendError(
                        f"POST {path}: the backend answered {response.status}", response.status
                    )
                body = await response.read()
        except TimeoutError:
            raise BackendError(f"POST {path}: no answer within {self._timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise BackendError(
                f"POST {path}: could not reach the backend ({type(exc).__name__})"
            ) from None
        return _decoded(path, body)

    async def post_with_retries(
        self,
        path: str,
        payload: Mapping[str, Any],
        attempts: int,
        first_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
    ) -> Any:
        """`post`, tried up to `attempts` times while the failure is retryable, waiting
        `first_delay_s` after the first failure and twice as long after each next one, up to
        `max_delay_s`. Raises the last `BackendError`."""
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        retry = loops.Retry(loops.Doubling(first=first_delay_s, ceiling=max_delay_s))
        for _ in range(attempts - 1):
            try:
                return await self.post(path, payload)
            except BackendError as exc:
                if not exc.retryable:
                    raise
            await asyncio.sleep(retry.next())
        return await self.post(path, payload)


def _decoded(path: str, body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise BackendError(f"POST {path}: the backend's answer is not JSON") from None
