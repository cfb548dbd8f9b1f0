"""The address guard where names are resolved: deliveries, ``destination test`` and the check
at creation all resolve a host through ``GuardedResolver``.

The rule itself is ``forbidden_address`` in domain/destinations.py. Here it is applied to
what DNS answers, once per connection: the sender's HTTP client connects to the addresses the
resolver returned and checked, never to a second answer (DNS rebinding). A host with any
address that is not allowed is refused whole. IP-literal hosts never reach a resolver (aiohttp
connects to them directly), so they are checked by ``literal_refusal`` before the request.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from xtracker_server.domain.addresses import forbidden_address, host_refusal, is_ip_literal
from xtracker_server.exceptions import XTrackerServerError

__all__ = ["AddressRefused", "GuardedResolver", "address_problem", "literal_refusal"]


class AddressRefused(XTrackerServerError):
    """``host`` resolved to an address deliveries may not reach. Not an ``OSError``, so that
    aiohttp does not turn it into a DNS failure (which is retried)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host} resolves to an address that is not allowed: {reason}")
        self.host = host


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (the system resolver, in a thread, by default) and returns the
    addresses only if every one of them is allowed. It keeps no cache: each call resolves."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner
        self._owns_inner = inner is None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()  # made here: it needs the running loop
        found = await self._inner.resolve(host, port, family)
        for result in found:
            reason = forbidden_address(result["host"])
            if reason:
                raise AddressRefused(host, reason)
        return found

    async def close(self) -> None:
        if self._owns_inner and self._inner is not None:
            await self._inner.close()


def literal_refusal(url: URL) -> str | None:
    """Why the IP-literal (or ``localhost``) host of ``url`` may not be called, or None."""
    return host_refusal(url.raw_host or "")


async def address_problem(url: str, resolver: AbstractResolver | None = None) -> str | None:
    """Why ``url`` may not receive deliveries (the check at creation): its host is, or
    resolves to, an address that is not allowed. A host that does not resolve now passes: its
    sends fail and are retried, and are checked again then."""
    try:
        parsed = URL(url)
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    host = parsed.raw_host
    if not host:
        return "the URL has no host"
    problem = literal_refusal(parsed)
    if problem or is_ip_literal(host):
        return problem
    guarded = GuardedResolver(resolver)
    try:
        await guarded.resolve(host, parsed.port or 0, socket.AF_UNSPEC)
    except AddressRefused as exc:
        return str(exc)
    except (OSError, UnicodeError):
        return None
    finally:
        await guarded.close()
    return None
