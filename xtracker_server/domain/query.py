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


#: The largest integer SQLite stores (a row id is a signed 64-bit integer).
MAX_ROW_ID = 2**63 - 1


def parse_id(raw: str) -> int | None:
    """A row id written in ASCII digits, or None: ``"²"`` or ``"-1"`` is no id, and neither is
    a number beyond SQLite's integers (looking it up would fail instead of finding nothing)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_ROW_ID)):
        return None
    value = int(raw)
    return value if value <= MAX_ROW_ID else None
