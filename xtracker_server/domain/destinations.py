"""Destinations: where events go, which events each gets (event maps), and the ids of their
deliveries. Which addresses may receive them: domain/addresses.py (its names are re-exported
here, see ``__getattr__``).

What each kind needs, as the operator gives it (``DestinationInput``, the kinds' settings, and
``prepare_destination``), is in domain/destination_input.py: pydantic models, imported when
first used (the names are re-exported here, see ``__getattr__``), so that what reads or
delivers to a destination (``xtracker outbox list``, the worker) does not import pydantic."""

from __future__ import annotations

import importlib
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
    import hashlib  # here: OpenSSL's library costs a command that lists destinations

    digest = hashlib.sha256(dedup_key + b"|" + str(destination_id).encode()).hexdigest()
    return f"xt_{digest[:32]}"


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    import base64
    import secrets

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


#: Defined in domain/destination_input.py, and still importable from here (older imports, the
#: tests): imported when first read (PEP 562).
_INPUT_NAMES = frozenset({
    "CONFIG_MODELS", "KIND_FIELDS", "DestinationInput", "FbCapiConfig", "S2sPostbackConfig",
    "WebhookConfig", "prepare_destination",
})  # fmt: skip


#: The address guard's names, still importable from here: domain/addresses.py.
_ADDRESS_NAMES = frozenset({"IPAddress", "forbidden_address", "host_refusal", "is_ip_literal"})


def __getattr__(name: str) -> Any:
    if name in _ADDRESS_NAMES:
        return getattr(importlib.import_module("xtracker_server.domain.addresses"), name)
    if name not in _INPUT_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("xtracker_server.domain.destination_input"), name)
