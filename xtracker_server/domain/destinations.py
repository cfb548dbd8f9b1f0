"""Destinations: where events go, which events each gets (event maps), which addresses may
receive them, and the ids of their deliveries.

What each kind needs, as the operator gives it (``DestinationInput``, the kinds' settings, and
``prepare_destination``), is in domain/destination_input.py: pydantic models, imported when
first used (the names are re-exported here, see ``__getattr__``), so that what reads or
delivers to a destination (``xtracker outbox list``, the worker) does not import pydantic."""

from __future__ import annotations

import base64
import hashlib
import importlib
import ipaddress
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from xtracker_wire import EVENT_NAMES, REVERSAL


class DestinationKind(str, Enum):
    FB_CAPI = "fb_capi"
    WEBHOOK = "webhook"
    S2S_POSTBACK = "s2s_postback"


#: canonical event -> the destination's name for it; "" means: not sent there.
#: A reversal (``deposit.reversed``) is not sent to CAPI: Meta's standard events have no refund
#: or chargeback, and a custom event would not take the Purchase back from its optimisation.
#: An S2S postback gets it only when its template can tell it from a conversion (see
#: ``REVERSAL_MACROS``): otherwise a reversal would read as one more conversion.
DEFAULT_EVENT_MAPS: dict[DestinationKind, dict[str, str]] = {
    DestinationKind.FB_CAPI: {
        "contact": "Contact",
        "subscribed": "Lead",
        "registration": "CompleteRegistration",
        "deposit": "Purchase",
        REVERSAL: "",
    },
    DestinationKind.WEBHOOK: {e: e for e in EVENT_NAMES},
    DestinationKind.S2S_POSTBACK: {e: e for e in EVENT_NAMES},
}

#: The macros that tell a reversal from a conversion in an S2S template.
REVERSAL_MACROS: tuple[str, ...] = ("{status}", "{event}", "{canonical}")


def default_event_map(kind: DestinationKind, config: dict[str, Any]) -> dict[str, str]:
    """The kind's default map; an S2S template without a macro of ``REVERSAL_MACROS`` does not
    get reversals by default (it would send them as conversions)."""
    base = dict(DEFAULT_EVENT_MAPS[kind])
    if kind is DestinationKind.S2S_POSTBACK:
        template = str(config.get("url_template", ""))
        if not any(m in template for m in REVERSAL_MACROS):
            base[REVERSAL] = ""
    return base


def check_url_shape(raw: str) -> str:
    url = raw.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    return url


def parse_event_map(assignments: list[str], base: dict[str, str]) -> dict[str, str]:
    """``["deposit=Purchase", "subscribed="]`` applied to ``base``; an empty name turns an
    event off for the destination."""
    result = dict(base)
    for item in assignments:
        event, sep, name = item.partition("=")
        event = event.strip().lower()
        if not sep or event not in EVENT_NAMES:
            raise ValueError(
                f"{item!r}: write EVENT=NAME (or EVENT= to stop sending it), EVENT one of "
                f"{', '.join(EVENT_NAMES)}"
            )
        name = name.strip()
        if len(name) > 64:
            raise ValueError(f"{item!r}: the name is longer than 64 characters")
        result[event] = name
    return result


def check_event_map(raw: dict[str, str]) -> dict[str, str]:
    unknown = set(raw) - set(EVENT_NAMES)
    if unknown:
        raise ValueError(f"unknown event(s) {', '.join(sorted(unknown))}")
    return {e: str(raw.get(e, "")).strip()[:64] for e in EVENT_NAMES}


def delivery_event_id(dedup_key: bytes, destination_id: int) -> str:
    """Stable for one event and one destination, across retries, restarts and replays; unique
    across spaces and servers because the dedup key includes the space."""
    digest = hashlib.sha256(dedup_key + b"|" + str(destination_id).encode()).hexdigest()
    return f"xt_{digest[:32]}"


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class PreparedDestination:
    kind: DestinationKind
    name: str
    enabled: bool
    config: dict[str, Any]
    secret: str | None  # stored: the webhook signing secret or the CAPI token
    shown_secret: str | None  # printed once: the generated webhook secret
    event_map: dict[str, str]
    proxy: str | None


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


#: Defined in domain/destination_input.py, and still importable from here (older imports, the
#: tests): imported when first read (PEP 562).
_INPUT_NAMES = frozenset({
    "CONFIG_MODELS", "KIND_FIELDS", "DestinationInput", "FbCapiConfig", "S2sPostbackConfig",
    "WebhookConfig", "prepare_destination",
})  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _INPUT_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("xtracker_server.domain.destination_input"), name)
