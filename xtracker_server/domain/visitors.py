"""Where a landing's visitor is: its address and country (whether it is a bot: domain/bots.py)."""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(proxies: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The visitor's address. ``X-Forwarded-For`` is believed only when the peer is a trusted
    proxy; then the rightmost address that is not itself a trusted proxy is the client."""
    if peer is None or not trusted or not forwarded_for or not _trusted(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a garbled header: trust nothing in it
        if not _trusted(hop, trusted):
            return hop
    return peer


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def country_code(raw: str | None) -> str | None:
    """An ISO 3166 alpha-2 code from a CDN's header (``CF-IPCountry``); unknowns (XX, T1) out."""
    if not raw:
        return None
    code = raw.strip().upper()
    if re.fullmatch(r"[A-Z]{2}", code) and code not in ("XX", "T1"):
        return code
    return None


def new_fbp(now_ms: int) -> str:
    """A ``_fbp`` browser id the way Meta's pixel writes it: ``fb.1.<ms>.<random integer>``."""
    return f"fb.1.{now_ms}.{secrets.randbelow(2**31 - 1) + 1}"


_FBP = re.compile(r"fb\.\d\.\d{10,16}\.\d{1,20}")


def valid_fbp(raw: str | None) -> str | None:
    return raw if raw and _FBP.fullmatch(raw) else None
