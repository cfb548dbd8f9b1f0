"""Telegram's rules for what carries a uid from the ad to the bot: the deep-link parameter
(``?start=<prefix>_<uid>``) and the bot's username. The server builds links with them
(xtracker_server/domain/links.py), the client reads ``/start`` payloads and builds deeplinks
with them (xtracker_client/_uid.py).

    >>> is_start_payload("fb_Ab3-x_9")
    True
"""

from __future__ import annotations

import re

__all__ = [
    "BOT_USERNAME",
    "STARTAPP_PAYLOAD_MAX",
    "START_PAYLOAD_MAX",
    "is_start_payload",
]

#: The longest ``?start=`` parameter Telegram passes to a bot, and ``?startapp=`` to a Mini App.
START_PAYLOAD_MAX = 64
STARTAPP_PAYLOAD_MAX = 512
#: A bot's username (without the "@"): a letter, then letters, digits and "_", 4 to 32 in all.
BOT_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
_PAYLOAD_CHARS = re.compile(r"[A-Za-z0-9_-]+")


def is_start_payload(text: str, limit: int = START_PAYLOAD_MAX) -> bool:
    """Whether Telegram carries ``text`` as a deep-link parameter: 1 to ``limit`` characters
    of A-Z a-z 0-9 _ -."""
    return 0 < len(text) <= limit and _PAYLOAD_CHARS.fullmatch(text) is not None
