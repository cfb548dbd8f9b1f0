"""Links: what a link is set to, and where a click on it leads.

Kinds and their targets:

    bot      target: bot username          -> https://t.me/<bot>?start=<prefix>_<uid>
    miniapp  target: bot username, app     -> https://t.me/<bot>/<app>?startapp=<prefix>_<uid>
    channel  target: the invite link       -> the invite link itself (no payload can pass)
    web      target: a URL with {uid}      -> the URL, {uid} replaced (e.g. an offer's click_id)

A link as the operator gives it is validated by ``LinkSpec`` (a pydantic model, in
domain/link_input.py, importable from here too); what the store keeps and answers is
``LinkSettings``, plain data: listing links imports no pydantic.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any
from urllib.parse import quote

from xtracker_server.exceptions import XTrackerServerError
from xtracker_wire import START_PAYLOAD_MAX, STARTAPP_PAYLOAD_MAX, is_start_payload


class LinkKind(str, Enum):
    BOT = "bot"
    MINIAPP = "miniapp"
    CHANNEL = "channel"
    WEB = "web"


SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


class PayloadTooLong(XTrackerServerError, ValueError):
    pass


def check_slug(raw: str) -> str:
    slug = raw.strip()
    if not SLUG.fullmatch(slug):
        raise ValueError(
            "must be 1-64 lower-case letters, digits and '-', not starting or ending with '-'"
        )
    return slug


@dataclass(frozen=True)
class LinkSettings:
    """What a link is set to, as stored: where a click leads (``kind``, ``target``, ``app``,
    ``prefix``), its landing page, and whether it is on. Made from a ``LinkSpec`` once that
    validated it (domain/link_input.py), or read back from the store, which validated it when
    it was written: plain data, so that reading links imports no pydantic."""

    kind: LinkKind
    target: str
    app: str | None = None
    prefix: str = "fb"
    title: str = ""
    text: str = ""
    button: str = "Open"
    image_url: str | None = None
    auto_redirect: bool = False
    redirect_delay_ms: int = 0
    enabled: bool = True

    def destination(self, uid: str) -> str:
        """Where a click with ``uid`` on this link leads."""
        return destination(self.kind, self.target, self.app, self.prefix, uid)

    def as_json(self) -> dict[str, Any]:
        """The fields, in their order, as JSON values (the kind by its name)."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"kind": self.kind.value}


def start_payload(prefix: str, uid: str) -> str:
    return f"{prefix}_{uid}"


def destination(kind: LinkKind, target: str, app: str | None, prefix: str, uid: str) -> str:
    """Where a click with ``uid`` leads."""
    if kind is LinkKind.BOT:
        payload = start_payload(prefix, uid)
        _check_payload(payload, START_PAYLOAD_MAX)
        return f"https://t.me/{target}?start={payload}"
    if kind is LinkKind.MINIAPP:
        payload = start_payload(prefix, uid)
        _check_payload(payload, STARTAPP_PAYLOAD_MAX)
        return f"https://t.me/{target}/{app}?startapp={payload}"
    if kind is LinkKind.CHANNEL:
        return target
    return target.replace("{uid}", quote(uid, safe=""))


def _check_payload(payload: str, limit: int) -> None:
    if not is_start_payload(payload, limit):
        raise PayloadTooLong(
            f"start payload {payload!r} breaks Telegram's limit of {limit} characters of "
            "A-Z a-z 0-9 _ -"
        )


def __getattr__(name: str) -> Any:
    # ``LinkSpec`` is defined in domain/link_input.py (pydantic), imported when first read.
    if name != "LinkSpec":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return importlib.import_module("xtracker_server.domain.link_input").LinkSpec
