"""What a click's user agent says for grouping: the device type, the OS and the browser.

The parse is the maintained ``ua-parser`` library's (the uap-core rules, packaged monthly as
``ua-parser-builtins``; ``ua-parser-rs`` runs them natively: about 0.04 ms for an agent not
seen before). uap-core names families (``iPhone``, ``iOS``, ``Mobile Safari``, ``Facebook``)
but no device type, so ``device_type`` reads one from its answer: uap-core's ``Spider`` is a
bot, its tablets (``iPad``, the ``Generic_Android_Tablet`` brand, Kindles) are tablets, a phone
OS is mobile, anything else a desktop. Android without the ``Mobile`` token is a tablet (the
convention Google's own browsers keep).

``user_agent_dims`` keeps the last ``PARSE_CACHE`` answers: the same few thousand agents make
almost all clicks, and the landing parses each click's agent once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ua_parser import Result


__all__ = [
    "PARSE_CACHE",
    "DeviceType",
    "UserAgentDims",
    "device_type",
    "load_parser",
    "user_agent_dims",
]

#: How many parsed agents ``user_agent_dims`` keeps (least recently used go first).
PARSE_CACHE = 8192
_FIELD_MAX = 64


class DeviceType(str, Enum):
    MOBILE = "mobile"
    TABLET = "tablet"
    DESKTOP = "desktop"
    BOT = "bot"


@dataclass(frozen=True)
class UserAgentDims:
    """``os`` and ``browser`` are uap-core's family names (``iOS``, ``Chrome Mobile``), None
    when it knows none (its ``Other``)."""

    device: DeviceType | None
    os: str | None
    browser: str | None


_NONE = UserAgentDims(None, None, None)
_MOBILE_OS = frozenset(
    {
        "iOS", "Android", "Windows Phone", "BlackBerry OS", "BlackBerry Tablet OS", "KaiOS",
        "Symbian OS", "Symbian^3", "Firefox OS", "webOS", "Tizen", "HarmonyOS", "Sailfish",
        "Bada", "MeeGo", "Maemo", "Ubuntu Touch", "Windows Mobile", "Windows CE",
    }
)  # fmt: skip
_TABLET_FAMILIES = ("iPad", "Kindle", "Tablet", "Nexus 7", "Nexus 9", "Nexus 10", "Galaxy Tab")
_TABLET_BRANDS = frozenset({"Generic_Android_Tablet"})


def device_type(
    ua: str, os_family: str | None, device_family: str | None, brand: str | None
) -> DeviceType:
    """The device type of uap-core's answer for ``ua`` (see the module's docstring)."""
    if device_family == "Spider":
        return DeviceType.BOT
    if brand in _TABLET_BRANDS or (
        device_family and any(t in device_family for t in _TABLET_FAMILIES)
    ):
        return DeviceType.TABLET
    if os_family == "Android" and "Mobile" not in ua:
        return DeviceType.TABLET
    if os_family in _MOBILE_OS or brand in ("Generic_Android", "Generic_Smartphone"):
        return DeviceType.MOBILE
    if device_family and "Feature Phone" in device_family:
        return DeviceType.MOBILE
    return DeviceType.DESKTOP


def _family(name: str | None) -> str | None:
    return None if not name or name == "Other" else name[:_FIELD_MAX]


@functools.cache
def load_parser() -> Callable[[str], Result]:
    """ua-parser's native resolver over the uap-core rules, built once. Building it takes about
    a second (loading and compiling ~1,000 rules), so it is not done on import (a command that
    opens the store would pay it): the server calls this at start-up, before the first click.
    The resolver alone: ``ua_parser.parse`` puts a small cache of its own (and its lock) in
    front of it, which ``user_agent_dims``'s cache makes redundant."""
    from ua_parser import Parser, load_builtins
    from ua_parser.regex import Resolver

    return Parser(Resolver(load_builtins())).parse


@functools.lru_cache(maxsize=PARSE_CACHE)
def user_agent_dims(user_agent: str | None) -> UserAgentDims:
    """The device type, OS and browser of ``user_agent``; all None without one."""
    if not user_agent or not user_agent.strip():
        return _NONE
    found = load_parser()(user_agent)
    os_family = found.os.family if found.os else None
    family, brand = (found.device.family, found.device.brand) if found.device else (None, None)
    return UserAgentDims(
        device=device_type(user_agent, os_family, family, brand),
        os=_family(os_family),
        browser=_family(found.user_agent.family if found.user_agent else None),
    )
