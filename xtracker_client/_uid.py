"""uids in Telegram: reading them from ``/start`` payloads and building deeplinks."""

from __future__ import annotations

import re

#: Telegram's start payload: at most 64 characters of A-Z a-z 0-9 _ -.
START_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BOT = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")


def parse_start_payload(text: str | None, *, prefixes: tuple[str, ...] | None = None) -> str | None:
    """The uid in a ``/start`` message or payload, or None.

    Accepts ``"/start fb_x"``, ``"/start@my_bot fb_x"``, ``"fb_x"`` and any other prefix
    (``"ig_x"``), unless ``prefixes`` limits them. Anything else (no prefix, bad characters,
    too long, empty) is None, so a plain ``/start`` is simply organic.

        >>> parse_start_payload("/start fb_Ab3-x_9")
        'Ab3-x_9'
    """
    if not text:
        return None
    text = text.strip()
    command, _, rest = text.partition(" ")
    if command == "/start" or command.startswith("/start@"):
        text = rest.strip()
    if not START_PAYLOAD.fullmatch(text):
        return None
    prefix, sep, uid = text.partition("_")
    if not sep or not prefix or not uid or (prefixes is not None and prefix not in prefixes):
        return None
    return uid


def deeplink(bot: str, uid: str, prefix: str = "fb") -> str:
    """``https://t.me/<bot>?start=<prefix>_<uid>``; refuses what Telegram would reject."""
    bot = bot.strip().removeprefix("@")
    if not _BOT.fullmatch(bot):
        raise ValueError(f"{bot!r} is not a bot username")
    if not prefix or "_" in prefix:
        raise ValueError("the prefix must be non-empty and contain no '_'")
    payload = f"{prefix}_{uid}"
    if not START_PAYLOAD.fullmatch(payload):
        raise ValueError(
            f"start payload {payload!r} breaks Telegram's limit: at most 64 characters of "
            "A-Z a-z 0-9 _ -"
        )
    return f"https://t.me/{bot}?start={payload}"
