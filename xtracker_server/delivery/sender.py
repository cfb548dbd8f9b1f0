"""Sending one outbound request: address safety, one pooled client, bounded reads, timing.

The client is aiohttp's: on this workload (small JSON bodies, many in flight over keep-alive
connections) it sends several times the requests per second of httpx for the same CPU, and
the delivery worker spends most of its time sending (see ``bench/delivery.py``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from xtracker_server.domain.destinations import forbidden_address
from xtracker_server.domain.outbound import OutboundRequest
from xtracker_server.domain.retry import parse_retry_after

_EXCERPT_BYTES = 16 * 1024
_USER_AGENT = "xtracker-delivery/1"


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


def _url(url: str) -> URL:
    """The URL sent exactly as built (the s2s macros are already percent-encoded; re-quoting
    could change a partner's bytes), unless it holds characters a request line may not carry,
    which are then percent-encoded."""
    parsed = URL(url, encoded=True)
    if parsed.is_absolute() and url.isascii() and not any(c in url for c in ' "<>\\^`{|}'):
        return parsed
    return URL(url)


class Sender:
    def __init__(self, *, timeout_s: float, allow_private: bool) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop. One pool for every destination and
        # proxy (aiohttp keys its connections by host, port, TLS and proxy). No cookie jar: a
        # destination's cookies are never sent back to it, or to anyone.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=200),
                headers={"user-agent": _USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def send(self, request: OutboundRequest, *, proxy: str | None = None) -> Answer:
        started = time.monotonic()
        if not self._allow_private:
            problem = await address_problem(request.url)
            if problem:
                return Answer(None, b"", 0, error=problem, refused=True)
        try:
            url = _url(request.url)
            async with self._client().request(
                request.method,
                url,
                headers=request.headers,
                data=request.body,
                proxy=proxy,
                allow_redirects=False,
            ) as response:
                body = b""
                while len(body) < _EXCERPT_BYTES:
                    chunk = await response.content.read(_EXCERPT_BYTES - len(body))
                    if not chunk:
                        break
                    body += chunk
                return Answer(
                    response.status,
                    body,
                    _ms_since(started),
                    retry_after_s=parse_retry_after(
                        response.headers.get("retry-after"), time.time()
                    ),
                )
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError) as exc:
            return Answer(None, b"", _ms_since(started), error=f"bad URL: {exc}", refused=True)
        except TimeoutError:
            return Answer(None, b"", _ms_since(started), error="timed out")
        except Exception as exc:  # never leave a row unsettled: retried, then given up
            return Answer(None, b"", _ms_since(started), error=f"{type(exc).__name__}: {exc}"[:300])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
