"""S2S postbacks: a URL template with macros, filled per event (docs/destinations.md).

``{status}`` is ``approved`` for an event and ``rejected`` for a reversal (``deposit.reversed``),
the words Keitaro and Binom take for a conversion's status."""

from __future__ import annotations

import re
from urllib.parse import quote

from xtracker_server.domain.outbound import DeliveryContext, OutboundRequest
from xtracker_wire import REVERSAL

MACROS: tuple[str, ...] = (
    "uid", "event", "canonical", "value", "currency", "occurred_at_ms", "tg_id", "fbclid",
    "campaign_id", "campaign_name", "adset_id", "adset_name", "ad_id", "ad_name", "placement",
    "eid", "event_id", "link", "country", "status",
)  # fmt: skip
#: ``{status}``: a conversion, and a reversal of one.
APPROVED, REJECTED = "approved", "rejected"
_MACRO = re.compile(r"\{([A-Za-z0-9_]+)\}")


def unknown_macros(template: str) -> set[str]:
    return {m for m in _MACRO.findall(template) if m not in MACROS}


def macro_values(ctx: DeliveryContext) -> dict[str, str]:
    click = ctx.click
    values: dict[str, object] = {
        "uid": ctx.uid,
        "event": ctx.event_name,
        "canonical": ctx.canonical,
        "value": ctx.value,
        "currency": ctx.currency,
        "occurred_at_ms": ctx.occurred_at_ms,
        "tg_id": ctx.tg_id,
        "fbclid": click.fbclid,
        "campaign_id": click.campaign_id,
        "campaign_name": click.campaign_name,
        "adset_id": click.adset_id,
        "adset_name": click.adset_name,
        "ad_id": click.ad_id,
        "ad_name": click.ad_name,
        "placement": click.placement,
        "eid": ctx.eid,
        "event_id": ctx.event_id,
        "link": click.link,
        "country": click.country,
        "status": REJECTED if ctx.canonical == REVERSAL else APPROVED,
    }
    return {k: "" if v is None else str(v) for k, v in values.items()}


def expand(template: str, ctx: DeliveryContext) -> str:
    """Each macro URL-encoded; a missing value becomes empty."""
    values = macro_values(ctx)
    return _MACRO.sub(lambda m: quote(values.get(m.group(1), ""), safe=""), template)


def s2s_request(template: str, method: str, ctx: DeliveryContext) -> OutboundRequest:
    return OutboundRequest(method=method, url=expand(template, ctx), headers={}, body=None)
