"""The address guard's rule: which IP addresses may receive deliveries (``forbidden_address``),
and which hosts are refused without DNS (``host_refusal``). Used when a destination is created
(services/destinations.py), by the sender's resolver (delivery/guard.py) and by
``destination test``. A module of its own: listing destinations or deliveries needs none of it
(``ipaddress`` and its networks cost every command that imported it)."""

from __future__ import annotations

import ipaddress

__all__ = ["IPAddress", "forbidden_address", "host_refusal", "is_ip_literal"]


#: IPv6 space that may hold a destination: global unicast, and the well-known NAT64 prefix
#: (RFC 6052), whose IPv4 address inside is checked instead. Everything else is refused:
#: ::/8 (IPv4-mapped and IPv4-compatible forms among it), local-use NAT64 64:ff9b:1::/48,
#: fc00::/7, fe80::/10, the deprecated site-local fec0::/10, multicast ff00::/8, and
#: unassigned space, several of which Python 3.11's ``is_global`` calls global.
_IPV6_ALLOWED_SPACE = (
    ipaddress.IPv6Network("2000::/3"),
    ipaddress.IPv6Network("64:ff9b::/96"),
)
#: Not globally reachable although some Python versions' ``is_global`` says so.
_ALSO_NON_GLOBAL = (
    ipaddress.IPv4Network("192.0.0.0/24"),  # IETF protocol assignments, anycast among them
    ipaddress.IPv6Network("3fff::/20"),  # documentation (RFC 9637)
)
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT, cloud metadata services
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def forbidden_address(address: str) -> str | None:
    """Why an IP address may not receive deliveries, or None if it may: the one rule of the
    address guard, used at creation, by the sender's resolver and by ``destination test``.

    Allowed are only addresses that ``ipaddress`` calls global, that are not multicast, and,
    for IPv6, that lie in global unicast space or the well-known NAT64 prefix. An IPv4 address
    carried inside an IPv6 one (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo server and
    client) is checked too: Python 3.11 calls ``2002:7f00:1::`` and ``::127.0.0.1`` global."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        for form, inner in _embedded_ipv4(ip):
            reason = _non_global(inner)
            if reason:
                return f"{ip} carries {inner} ({form}), and {reason}"
        if not any(ip in space for space in _IPV6_ALLOWED_SPACE):
            return _non_global(ip) or f"{ip} is outside IPv6 global unicast space"
    return _non_global(ip)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, with the name of the form."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip.ipv4_mapped is not None:
        found.append(("IPv4-mapped", ip.ipv4_mapped))
    elif ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are themselves
        found.append(("IPv4-compatible", low32))
    if ip.sixtofour is not None:
        found.append(("6to4", ip.sixtofour))
    if ip in _NAT64:
        found.append(("NAT64", low32))
    if ip in _NAT64_LOCAL:
        found.append(("local-use NAT64", low32))
    if ip.teredo is not None:
        server, client = ip.teredo
        found += [("Teredo server", server), ("Teredo client", client)]
    return found


def _non_global(ip: IPAddress) -> str | None:
    if ip.is_global and not ip.is_multicast and not any(ip in n for n in _ALSO_NON_GLOBAL):
        return None
    if ip in _SHARED:
        return f"{ip} is a shared (carrier-grade NAT) address"
    for label, flag in (
        ("an unspecified", ip.is_unspecified),
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a reserved", ip.is_reserved),
        ("a private or special-purpose", ip.is_private),
    ):
        if flag:
            return f"{ip} is {label} address"
    return f"{ip} is not a globally reachable address"


def is_ip_literal(host: str) -> bool:
    """Whether an HTTP client takes ``host`` for an address rather than a name to resolve (the
    test aiohttp applies before it would call its resolver)."""
    return ":" in host or host.replace(".", "").isdigit()


def host_refusal(host: str) -> str | None:
    """The address guard without DNS: why an IP-literal host, or a ``localhost`` name, may not
    receive deliveries. A name is checked when it is resolved (see delivery/guard.py)."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is a loopback address"
    if is_ip_literal(host):
        return forbidden_address(host)
    return None
