"""Clicks: minting uids and reading what an ad's URL parameters say about the click."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from xtracker_server.domain.devices import user_agent_dims
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
_DOMAIN_MAX = 253
#: How many sub-id parameters a space may declare, and the form of their names.
SUB_IDS_MAX = 20
_SUB_ID_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,31}")


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
    # What reports group and filter by, read once when the click is made (issue 17 §1): the
    # device type, OS and browser of ``user_agent`` (domain/devices.py), the referrer's host,
    # and the values of the query parameters the space declares as sub-ids.
    device: str | None = None
    os: str | None = None
    browser: str | None = None
    referrer_domain: str | None = None
    sub_ids: dict[str, str] = field(default_factory=dict)


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
    sub_id_params: Iterable[str] = (),
) -> ClickDraft:
    """A new click with a fresh uid. Fields given explicitly win over those in the query;
    ``sub_id_params``: the query parameters the space declares as sub-ids."""
    params = parse_query(raw_query) if raw_query else {}
    query_fbclid, fields = _fields(params)
    fbclid = fbclid or query_fbclid
    if campaign_name:
        fields["campaign_name"] = campaign_name
    agent = user_agent_dims(user_agent[:_TEXT_MAX] if user_agent else None)
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
        device=agent.device.value if agent.device else None,
        os=agent.os,
        browser=agent.browser,
        referrer_domain=referrer_domain(referrer),
        sub_ids=sub_id_values(params, sub_id_params),
    )


def fields_from_query(raw_query: str | None) -> tuple[str | None, dict[str, str]]:
    """The fbclid and the campaign and utm fields found in a landing URL's query string."""
    if not raw_query:
        return None, {}
    return _fields(parse_query(raw_query))


def _fields(params: Mapping[str, str]) -> tuple[str | None, dict[str, str]]:
    wanted = (*CAMPAIGN_FIELDS, *UTM_FIELDS)
    return params.get("fbclid"), {k: params[k][:_FIELD_MAX] for k in wanted if k in params}


def referrer_domain(referrer: str | None) -> str | None:
    """The host of a ``Referer`` header, lower case, without ``www.`` (``m.facebook.com``);
    None for none, or for one that is not an absolute http(s) URL."""
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer.strip()[:_TEXT_MAX])
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    host = host.rstrip(".")
    return (host[4:] if host.startswith("www.") else host)[:_DOMAIN_MAX] or None


def sub_id_values(params: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The values of the declared sub-id parameters that the query has (non-empty ones)."""
    return {n: params[n][:_FIELD_MAX] for n in names if params.get(n)}


def check_sub_id_names(names: Iterable[object]) -> tuple[str, ...]:
    """A space's sub-id parameter names, checked, in the order given; ValueError says what is
    wrong. A name is a query parameter (``sub1``, ``creative``): a letter, then up to 31
    letters, digits, ``_`` or ``-``; not one recorded as a field of its own (fbclid, the
    campaign and utm fields); at most ``SUB_IDS_MAX`` of them, each once."""
    checked: list[str] = []
    own = {"fbclid", *CAMPAIGN_FIELDS, *UTM_FIELDS}
    for name in names:
        if not isinstance(name, str) or not _SUB_ID_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a parameter name: a letter, then up to 31 letters, digits,"
                " '_' or '-'"
            )
        if name in own:
            raise ValueError(f"{name!r} is recorded as a field of its own: leave it out")
        if name in checked:
            raise ValueError(f"{name!r} is given twice")
        checked.append(name)
    if len(checked) > SUB_IDS_MAX:
        raise ValueError(f"at most {SUB_IDS_MAX} sub-id parameters")
    return tuple(checked)
