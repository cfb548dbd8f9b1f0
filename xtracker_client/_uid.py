"""uids in Telegram: reading them from ``/start`` payloads and building deeplinks."""

from __future__ import annotations

from xtracker_client._exceptions import DeeplinkError
from xtracker_wire import BOT_USERNAME, START_PAYLOAD_MAX, is_start_payload

__all__ = ["deeplink", "parse_start_payload"]


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
    if not is_start_payload(text):
        return None
    prefix, sep, uid = text.partition("_")
    if not sep or not prefix or not uid or (prefixes is not None and prefix not in prefixes):
        return None
    return uid


def deeplink(bot: str, uid: str, prefix: str = "fb") -> str:
    """``https://t.me/<bot>?start=<prefix>_<uid>``; refuses what Telegram would reject with
    ``DeeplinkError`` (also a ``ValueError``)."""
    bot = bot.strip().removeprefix("@")
    if not BOT_USERNAME.fullmatch(bot):
        raise DeeplinkError(f"{bot!r} is not a bot username")
    if not prefix or "_" in prefix:
        raise DeeplinkError("the prefix must be non-empty and contain no '_'")
    payload = f"{prefix}_{uid}"
    if not is_start_payload(payload):
        raise DeeplinkError(
            f"start payload {payload!r} breaks Telegram's limit: at most {START_PAYLOAD_MAX}"
            " characters of A-Z a-z 0-9 _ -"
        )
    return f"https://t.me/{bot}?start={payload}"
