"""Sending one outbound request: address safety, per-proxy clients, bounded reads, timing."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from xtracker_server.domain.destinations import forbidden_address
from xtracker_server.domain.outbound import OutboundRequest
from xtracker_server.domain.retry import parse_retry_after

_EXCERPT_BYTES = 16 * 1024


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (timeout, refused, bad URL)
    body: bytes
    latency_ms: int
    error: str | None = None
    retry_after_s: float | None = None
    refused: bool = False  # never sent: the address is not allowed

    @property
    def excerpt(self) -> str:
        return self.body[:300].decode("utf-8", "replace")


async def address_problem(url: str) -> str | None:
    """Why ``url`` may not be called: its host resolves to a loopback, private, link-local or
    multicast address (checked after DNS, at send time)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return "the URL has no host"
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        # Not resolvable now (a DNS outage passes): the send itself fails and is retried.
        return None
    for info in infos:
        reason = forbidden_address(str(info[4][0]))
        if reason:
            return f"{host} resolves to {reason}; set XTRACKER_ALLOW_PRIVATE_DESTINATIONS to allow"
    return None


class Sender:
    def __init__(self, *, timeout_s: float, allow_private: bool) -> None:
        self._timeout = httpx.Timeout(timeout_s)
        self._allow_private = allow_private
        self._clients: dict[str | None, httpx.AsyncClient] = {}

    def _client(self, proxy: str | None) -> httpx.AsyncClient:
        client = self._clients.get(proxy)
        if client is None:
            client = httpx.AsyncClient(
                timeout=self._timeout,
                follow_redirects=False,
                proxy=proxy,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                headers={"user-agent": "xtracker-delivery/1"},
            )
            self._clients[proxy] = client
        return client

    async def send(self, request: OutboundRequest, *, proxy: str | None = None) -> Answer:
        started = time.monotonic()
        if not self._allow_private:
            problem = await address_problem(request.url)
            if problem:
                return Answer(None, b"", 0, error=problem, refused=True)
        try:
            async with self._client(proxy).stream(
                request.method, request.url, headers=request.headers, content=request.body
            ) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= _EXCERPT_BYTES:
                        break
                return Answer(
                    response.status_code,
                    body[:_EXCERPT_BYTES],
                    _ms_since(started),
                    retry_after_s=parse_retry_after(
                        response.headers.get("retry-after"), time.time()
                    ),
                )
        except httpx.InvalidURL as exc:
            return Answer(None, b"", _ms_since(started), error=f"bad URL: {exc}", refused=True)
        except httpx.TimeoutException:
            return Answer(None, b"", _ms_since(started), error="timed out")
        except httpx.HTTPError as exc:
            return Answer(None, b"", _ms_since(started), error=f"{type(exc).__name__}: {exc}"[:300])
        except Exception as exc:  # never leave a row unsettled: retried, then given up
            return Answer(None, b"", _ms_since(started), error=f"{type(exc).__name__}: {exc}"[:300])

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
