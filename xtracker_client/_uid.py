"""uids in Telegram: reading them from ``/start`` payloads and building deeplinks."""

from __future__ import annotations

from collections.abc import Iterable

from xtracker_client._exceptions import DeeplinkError
from xtracker_wire import BOT_USERNAME, START_PAYLOAD_MAX, is_start_payload

__all__ = ["deeplink", "parse_start_payload"]


def parse_start_payload(
    text: str | None, *, prefixes: str | Iterable[str] | None = ("fb",)
) -> str | None:
    """The uid in a ``/start`` message or payload, or None.

    Accepts ``"/start fb_x"``, ``"/start@my_bot fb_x"`` and ``"fb_x"``: the ``fb_`` prefix of
    XTRACKER's links. Other prefixes only when given (``prefixes=("fb", "ig")``; ``None``:
    any prefix), so someone else's payload (``/start ref_42``) is never read as a uid.
    Anything else (another prefix, bad characters, too long, empty) is None, so a plain
    ``/start`` is simply organic.

        >>> parse_start_payload("/start fb_Ab3-x_9")
        'Ab3-x_9'
        >>> parse_start_payload("/start ref_42") is None
        True
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
    if not sep or not prefix or not uid:
        return None
    if prefixes is not None:
        allowed = (prefixes,) if isinstance(prefixes, str) else prefixes
        if prefix not in allowed:
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
