"""Unfilled macros: a value that still holds the placeholder a sender should have replaced.

A partner cabinet that does not know a macro leaves it in the URL as it was typed, and
``eid={transaction_id}`` would be stored literally: every later deposit of that uid would be a
duplicate of it, and the network never re-sends. So a field that holds an unfilled macro is
refused, naming the field and the macro, before anything is stored.

The syntaxes of the networks and trackers in use: ``{x}``, ``{{x}}``, ``${x}`` anywhere in a
value (a brace never belongs to an id), and ``[x]``, ``%x%``, ``#x#`` when not glued to a letter
or digit on either side, so ``order#12#3`` or ``50%off%`` stay ids. A macro's name starts with a
letter or ``_``. The value is also read once and twice URL-decoded: a cabinet that encodes the
URL it was given sends ``%7Btransaction_id%7D``, or ``%257B…`` when it encodes twice.

    >>> unfilled_macro("{transaction_id}")
    '{transaction_id}'
    >>> unfilled_macro("dep-%257Btotaldep%257D")
    '{totaldep}'
    >>> unfilled_macro("order#12#3") is None and unfilled_macro("a%20b") is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from xtracker_server.exceptions import XTrackerServerError

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}"
# Longer forms first: at one position the alternation takes the first that matches, so
# "{{x}}" is named as such, not as "{x}" inside it.
_MACRO = re.compile(
    rf"\$\{{\s*{_NAME}\s*\}}"  # ${x}
    rf"|\{{\{{\s*{_NAME}\s*\}}\}}"  # {{x}}
    rf"|\{{\s*{_NAME}\s*\}}"  # {x}
    rf"|(?<![A-Za-z0-9])(?:\[{_NAME}\]|%{_NAME}%|#{_NAME}#)(?![A-Za-z0-9])"  # [x] %x% #x#
)
#: How many times a value is URL-decoded to look for a macro: once- and twice-encoded URLs.
_DECODINGS = 2


def unfilled_macro(value: str) -> str | None:
    """The first unfilled macro in ``value`` (URL-decoded, as the sender meant it), or None."""
    for _ in range(_DECODINGS + 1):
        found = _MACRO.search(value)
        if found is not None:
            return found[0]
        decoded = unquote(value)
        if decoded == value:
            return None
        value = decoded
    return None


@dataclass(frozen=True)
class UnfilledMacro:
    """``field`` holds ``macro``; ``sent_as`` is the name the sender used for the field (a
    postback's parameter alias), or the field itself."""

    field: str
    sent_as: str
    macro: str

    @property
    def message(self) -> str:
        named = self.field if self.sent_as == self.field else f"{self.sent_as} ({self.field})"
        return (
            f"{named} holds an unfilled macro {self.macro}: the sender did not replace it with"
            " a real value, so nothing was stored. Fix the template (in a postback URL, use the"
            " network's own name for that macro) and send again"
        )


class UnfilledMacroError(XTrackerServerError, ValueError):
    """Raised where a whole request is read at once (``read_postback``): answered 400."""

    def __init__(self, found: UnfilledMacro) -> None:
        super().__init__(found.message)
        self.found = found


def first_unfilled_macro(
    data: Mapping[str, object], fields: Iterable[str], names: Mapping[str, str] | None = None
) -> UnfilledMacro | None:
    """The first of ``fields`` in ``data`` whose text holds an unfilled macro. ``names`` maps a
    field to the name the sender used for it (a postback's parameter alias)."""
    for field in fields:
        raw = data.get(field)
        if isinstance(raw, str):
            macro = unfilled_macro(raw)
            if macro is not None:
                return UnfilledMacro(field, (names or {}).get(field, field), macro)
    return None
