"""Clicks: minting uids and reading what an ad's URL parameters say about the click."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from xtracker_server.domain.query import parse_query

#: The campaign fields a Facebook ad's URL parameters can fill (see docs/links.md).
CAMPAIGN_FIELDS: tuple[str, ...] = (
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "ad_id",
    "ad_name",
    "placement",
)
UTM_FIELDS: tuple[str, ...] = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
)
_FIELD_MAX = 256
_TEXT_MAX = 1024
_FBCLID_MAX = 512
_QUERY_MAX = 4096


UID_LENGTH = 16


def new_uid() -> str:
    """A click's uid: 96 random bits in 16 URL-safe characters, so ``fb_<uid>`` fits well
    within Telegram's 64-character start payload."""
    return secrets.token_urlsafe(12)


def fbc_from_fbclid(fbclid: str, created_ms: int) -> str:
    """Facebook's click cookie value: ``fb.1.<creation ms>.<fbclid>``, fbclid unaltered."""
    return f"fb.1.{created_ms}.{fbclid}"


@dataclass
class ClickDraft:
    """Everything a click records, before it is stored."""

    space_id: int
    uid: str
    created_ms: int
    source: str  # "landing", "redirect" or "api"
    link_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None
    referrer: str | None = None
    fbclid: str | None = None
    fbc: str | None = None
    fbp: str | None = None
    country: str | None = None
    raw_query: str | None = None
    fields: dict[str, str] = field(default_factory=dict)  # CAMPAIGN_FIELDS and UTM_FIELDS


def click_draft(
    *,
    space_id: int,
    source: str,
    now_ms: int,
    raw_query: str | None,
    link_id: int | None = None,
    fbclid: str | None = None,
    campaign_name: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    referrer: str | None = None,
    fbp: str | None = None,
    country: str | None = None,
) -> ClickDraft:
    """A new click with a fresh uid. Fields given explicitly win over those in the query."""
    query_fbclid, fields = fields_from_query(raw_query)
    fbclid = fbclid or query_fbclid
    if campaign_name:
        fields["campaign_name"] = campaign_name
    return ClickDraft(
        space_id=space_id,
        uid=new_uid(),
        created_ms=now_ms,
        source=source,
        link_id=link_id,
        ip=ip,
        user_agent=user_agent[:_TEXT_MAX] if user_agent else None,
        referrer=referrer[:_TEXT_MAX] if referrer else None,
        fbclid=fbclid[:_FBCLID_MAX] if fbclid else None,
        fbc=fbc_from_fbclid(fbclid[:_FBCLID_MAX], now_ms) if fbclid else None,
        fbp=fbp,
        country=country,
        raw_query=raw_query[:_QUERY_MAX] if raw_query else None,
        fields=fields,
    )


def fields_from_query(raw_query: str | None) -> tuple[str | None, dict[str, str]]:
    """The fbclid and the campaign and utm fields found in a landing URL's query string."""
    if not raw_query:
        return None, {}
    params = parse_query(raw_query)
    wanted = (*CAMPAIGN_FIELDS, *UTM_FIELDS)
    found = {k: params[k][:_FIELD_MAX] for k in wanted if k in params}
    return params.get("fbclid"), found
