"""Sending one outbound request: address safety, one pooled client, bounded reads, timing.

Address safety (unless private destinations are allowed): an IP-literal host, of the
destination or of its proxy, is checked before the request; a name is resolved by the
session's ``GuardedResolver`` (delivery/guard.py), which refuses the whole host if any of its
addresses is not allowed and hands the connection only addresses it checked. DNS is not cached
(``use_dns_cache=False``), so every new connection is resolved and checked again; a pooled
connection stays on the address checked when it was opened. Through a proxy, the destination's
name is resolved by the proxy, not here: the proxy's own address is what is checked.

The client is aiohttp's: on this workload (small JSON bodies, many in flight over keep-alive
connections) it sends several times the requests per second of httpx for the same CPU, and
the delivery worker spends most of its time sending (see ``bench/delivery.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from xtracker_server.delivery.guard import AddressRefused, GuardedResolver, literal_refusal
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


def _url(url: str) -> URL:
    """The URL sent exactly as built (the s2s macros are already percent-encoded; re-quoting
    could change a partner's bytes), unless it holds characters a request line may not carry,
    which are then percent-encoded."""
    parsed = URL(url, encoded=True)
    if parsed.is_absolute() and url.isascii() and not any(c in url for c in ' "<>\\^`{|}'):
        return parsed
    return URL(url)


_ALLOW_HINT = "; set XTRACKER_ALLOW_PRIVATE_DESTINATIONS to allow"


class Sender:
    def __init__(
        self,
        *,
        timeout_s: float,
        allow_private: bool,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """``resolver`` answers DNS (default: the system's, in a thread); the guard wraps it
        unless ``allow_private``. Tests pass a fake one."""
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._allow_private = allow_private
        self._resolver = resolver if allow_private else GuardedResolver(resolver)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop. One pool for every destination and
        # proxy (aiohttp keys its connections by host, port, TLS and proxy). No cookie jar: a
        # destination's cookies are never sent back to it, or to anyone.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(
                    limit=200, resolver=self._resolver, use_dns_cache=False
                ),
                headers={"user-agent": _USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    async def send(self, request: OutboundRequest, *, proxy: str | None = None) -> Answer:
        started = time.monotonic()
        try:
            url = _url(request.url)
            if not self._allow_private:
                problem = literal_refusal(url) or (proxy and _proxy_refusal(proxy))
                if problem:
                    return Answer(None, b"", 0, error=problem + _ALLOW_HINT, refused=True)
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
        except AddressRefused as exc:
            which = "proxy: " if proxy and exc.host == URL(proxy).raw_host else ""
            error = f"{which}{exc}{_ALLOW_HINT}"
            return Answer(None, b"", _ms_since(started), error=error, refused=True)
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
        if self._resolver is not None:
            await self._resolver.close()


def _proxy_refusal(proxy: str) -> str | None:
    problem = literal_refusal(URL(proxy))
    return f"proxy: {problem}" if problem else None


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
