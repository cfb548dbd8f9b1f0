"""Signed webhooks: the §4 JSON body, signed per the Standard Webhooks scheme.

Signed content is ``<webhook-id>.<webhook-timestamp>.<body>``, HMAC-SHA256 with the secret's
bytes (``whsec_<base64>``), sent as ``webhook-signature: v1,<base64>``. ``webhook-id`` is the
delivery's stable event_id: receivers use it as their idempotency key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from xtracker_server.domain.outbound import DeliveryContext, OutboundRequest

_CLICK_FIELDS = (
    "fbclid", "campaign_id", "campaign_name", "adset_id", "adset_name", "ad_id", "ad_name",
    "placement", "country", "link",
)  # fmt: skip


def webhook_body(ctx: DeliveryContext) -> dict[str, Any]:
    click: dict[str, Any] = {"uid": ctx.uid, "tg_id": ctx.tg_id}
    click.update({name: getattr(ctx.click, name) for name in _CLICK_FIELDS})
    data = {"value": ctx.value, "currency": ctx.currency} if ctx.value is not None else {}
    return {
        "event": ctx.event_name,
        "canonical": ctx.canonical,
        "event_id": ctx.event_id,
        "occurred_at_ms": ctx.occurred_at_ms,
        "eid": ctx.eid,
        "click": click,
        "data": data,
    }


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.digest(key, signed, hashlib.sha256)  # one call, no HMAC object
    return "v1," + base64.b64encode(digest).decode()


def webhook_request(
    ctx: DeliveryContext,
    *,
    url: str,
    method: str,
    secret: str,
    extra_headers: dict[str, str],
    now_s: int,
) -> OutboundRequest:
    body = json.dumps(webhook_body(ctx), separators=(",", ":"), ensure_ascii=False).encode()
    headers = {
        **extra_headers,
        "content-type": "application/json",
        "webhook-id": ctx.event_id,
        "webhook-timestamp": str(now_s),
        "webhook-signature": sign(secret, ctx.event_id, now_s, body),
    }
    return OutboundRequest(method=method, url=url, headers=headers, body=body)
