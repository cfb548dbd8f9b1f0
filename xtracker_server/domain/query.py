"""Tolerant query-string parsing for postbacks.

Networks fill URLs in odd ways: empty macros (``&value=&``), and a second ``?`` appended to a
URL that already had one (``...&event=reg?sub=1``). Both must parse as the user meant.
"""

from __future__ import annotations

from urllib.parse import parse_qsl


def parse_query(raw: str) -> dict[str, str]:
    """Name -> first non-empty value. Empty parameters count as absent; every ``?`` after the
    first separates parameters like ``&``."""
    raw = raw.lstrip("?").replace("?", "&")
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=False, errors="replace"):
        value = value.strip()
        if value and name not in params:
            params[name] = value
    return params


#: The most digits a whole number in a path or query may have: 18 always fit SQLite's 64-bit
#: INTEGER, and no id, count or epoch millisecond needs more.
MAX_WHOLE_DIGITS = 18
#: The largest such number (also the bound of the CLI's id options).
MAX_WHOLE = 10**MAX_WHOLE_DIGITS - 1


def whole_number(raw: str | None) -> int | None:
    """``raw`` as a non-negative integer when it is 1 to 18 ASCII digits, else None.

    The one parser of numbers in paths, query strings and headers. ``str.isdigit()`` is not
    enough: it is true for "²" (which ``int()`` then refuses) and for other scripts' digits
    ("٣", which ``int()`` reads), and a long digit string costs ``int()`` time and overflows
    SQLite.

        >>> whole_number("42"), whole_number("²"), whole_number("٣"), whole_number("9" * 19)
        (42, None, None, None)
    """
    if raw is None or not 0 < len(raw) <= MAX_WHOLE_DIGITS or not raw.isascii():
        return None
    return int(raw) if raw.isdigit() else None
