"""The rules of each field on the wire: amounts, times, currency codes, identifiers, Telegram
user ids, and the limits they enforce. Each rule raises ``ValueError`` with a message that says
what to send instead; the models (``_models.py``) turn that into a validation error.

    >>> parse_value("25.00")
    Decimal('25.00')
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from decimal import Decimal, InvalidOperation

__all__ = [
    "MAX_EID_LEN",
    "MAX_FUTURE_SKEW_MS",
    "MAX_TG_ID",
    "MAX_UID_LEN",
    "MAX_VALUE",
    "MAX_VALUE_DECIMALS",
    "MIN_OCCURRED_AT_MS",
    "check_currency",
    "check_occurred_at_ms",
    "check_plain_text",
    "check_tg_id",
    "clean_text",
    "decimal_text",
    "parse_value",
    "strict_int",
]

#: Largest accepted amount. Generous on purpose: 10,000 USD is about 2.5e8 in VND or IDR.
MAX_VALUE = Decimal("1000000000000")
#: Decimal places kept; enough for crypto amounts, small enough to catch garbage.
MAX_VALUE_DECIMALS = 8
#: Nothing tracked here happened before 2015; earlier means a unit or clock error.
MIN_OCCURRED_AT_MS = 1_420_070_400_000
#: How far ahead of the receiver's clock a timestamp may be (clock skew, local time sent as UTC).
MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000
#: Telegram user ids are positive and fit in 52 bits.
MAX_TG_ID = 2**53
#: The longest uid and eid: a uid is the server's (16 characters) or a partner's click id.
MAX_UID_LEN = 128
MAX_EID_LEN = 256
#: Integers are stored as SQLite's 64-bit INTEGER: anything outside is refused, never converted.
_INT_LIMIT = 2**63
#: No integer field has more digits than this: a longer number is refused before int() runs.
_MAX_INT_DIGITS = 19
#: The longest amount text worth reading ("1000000000000.00000000" is 22 characters).
_MAX_VALUE_CHARS = 64

# The shape of a currency code; the server checks it against ISO 4217, the crypto tickers it
# knows and the space's own list (xtracker_server/domain/currencies.py).
_CURRENCY = re.compile(r"[A-Za-z0-9]{3,10}")
_INT_TEXT = re.compile(r"\s*-?[0-9]{1,20}\s*", re.ASCII)
# Only ASCII digits, one optional point, an optional exponent: Decimal() would also take
# "1_000" and other scripts' digits (Arabic-Indic "\u0661\u0660\u0660"), which no amount means.
_AMOUNT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = frozenset({"nan", "snan", "inf", "infinity"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Unicode categories no text field may hold: controls and lone surrogates (not text at all).
_NEVER = frozenset({"Cc", "Cs"})
# ... and what an identifier may not hold either: format characters (bidi overrides and
# isolates, zero-width spaces and joiners, the BOM) and line/paragraph separators, which make
# two different ids look the same, or one id look like another, in a log or a dashboard.
_NOT_IN_IDS = frozenset({"Cc", "Cs", "Cf", "Zl", "Zp"})


def parse_value(raw: object) -> Decimal:
    """An amount from a string or a number, exact, positive and sane, as a ``Decimal``.

    Floats are taken through their shortest ``repr`` (``25.5`` -> ``Decimal('25.5')``), so a
    float never smuggles binary noise into revenue. The size is checked from the exponent before
    any arithmetic, so ``1e1000000`` costs no more than ``1``.
    """
    if isinstance(raw, bool):
        raise ValueError('must be a decimal amount such as "25.00", not a boolean')
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise ValueError("must be a finite amount")
        raw = repr(raw)
    if isinstance(raw, int):
        if raw.bit_length() > 64:
            raise ValueError(f"is absurdly large (the limit is {MAX_VALUE})")
        text = str(raw)
    elif isinstance(raw, Decimal):
        text = str(raw)
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise ValueError('must be a decimal amount such as "25.00" (a string or a number)')
    value = raw if isinstance(raw, Decimal) else _decimal(text)
    if not value.is_finite():
        raise ValueError("must be a finite amount")
    if value <= 0:
        raise ValueError("must be greater than zero")
    if value.adjusted() >= 13 or value > MAX_VALUE:
        raise ValueError(f"is absurdly large (the limit is {MAX_VALUE})")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_VALUE_DECIMALS:
        raise ValueError(f"has more than {MAX_VALUE_DECIMALS} decimal places")
    # Fixed-point form keeps the given scale: "25.00" stays "25.00", "1E+3" becomes "1000".
    return Decimal(decimal_text(value)) if "e" in text or "E" in text else value


def _decimal(text: str) -> Decimal:
    if text.lstrip("+-").lower() in _NOT_FINITE:
        raise ValueError("must be a finite amount")
    if len(text) > _MAX_VALUE_CHARS or not _AMOUNT_TEXT.fullmatch(text):
        raise ValueError(
            f'{text[:40]!r} is not a decimal amount such as "25.00" (ASCII digits, an optional'
            " point; no '_', spaces or other digits)"
        )
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond what Decimal holds
        raise ValueError(f"is absurdly large (the limit is {MAX_VALUE})") from None


def decimal_text(value: Decimal) -> str:
    """An amount as plain fixed-point text, never exponent notation: ``1E-8`` -> ``0.00000001``."""
    return format(value, "f")


def check_occurred_at_ms(ms: int, *, now_ms: int | None = None) -> int:
    """Reject timestamps that are absurd (before 2015, or seconds instead of milliseconds)
    or far in the future."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ms < MIN_OCCURRED_AT_MS:
        hint = (
            " (it looks like seconds: send milliseconds since the epoch)"
            if MIN_OCCURRED_AT_MS // 1000 <= ms < 10**11
            else ""
        )
        raise ValueError(f"{ms} is before 2015{hint}")
    if ms > now + MAX_FUTURE_SKEW_MS:
        raise ValueError(f"{ms} is more than 24 hours in the future")
    return ms


def strict_int(raw: object, what: str) -> int:
    """An integer from an int, a string of at most 20 ASCII digits, or a number with no
    fraction. A number's digit count is checked from its exponent BEFORE int() runs: int() of
    ``Decimal("1e1000000")`` builds a million-digit integer and takes minutes."""
    if isinstance(raw, bool):
        raise ValueError(f"must be {what}, not a boolean")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _INT_TEXT.fullmatch(raw):
        value = int(raw)
    elif isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        value = int(raw)  # at most 309 digits: cheap
    elif isinstance(raw, Decimal) and raw.is_finite():
        if raw.adjusted() >= _MAX_INT_DIGITS:
            raise ValueError(f"must be {what}: this number is out of range")
        if raw != raw.to_integral_value():
            raise ValueError(f"must be {what}")
        value = int(raw)
    else:
        raise ValueError(f"must be {what}")
    if not -_INT_LIMIT < value < _INT_LIMIT:
        raise ValueError(f"must be {what}: this number is out of range")
    return value


def check_plain_text(text: str, *, identifier: bool = True) -> str:
    """``text`` if it holds no control character and no lone surrogate, and (for an
    ``identifier`` such as a uid, an eid or a postback status) no format character (bidi
    controls U+202A-U+202E and U+2066-U+2069, zero-width U+200B-U+200F, U+FEFF ...) nor line or
    paragraph separator; otherwise ``ValueError`` naming the first offending character.

        >>> check_plain_text("ab\u202ecd")
        Traceback (most recent call last):
        ValueError: contains U+202E, an invisible, control or bidi character: send plain text
    """
    if text.isascii():
        found = _CONTROL.search(text)
        bad = found.group() if found else None
    else:
        refused = _NOT_IN_IDS if identifier else _NEVER
        bad = next((ch for ch in text if unicodedata.category(ch) in refused), None)
    if bad is not None:
        raise ValueError(
            f"contains U+{ord(bad):04X}, an invisible, control or bidi character: send plain text"
        )
    return text


def check_currency(raw: object) -> str:
    """A currency code's shape (3 to 10 ASCII letters or digits), upper-cased: ``eur`` ->
    ``EUR``. Whether the code is known is the server's check (ISO 4217, common crypto tickers,
    the space's own list)."""
    if not isinstance(raw, str) or not _CURRENCY.fullmatch(raw.strip()):
        raise ValueError(
            "must be a currency code: an ISO 4217 code such as USD or EUR, or a crypto ticker"
            " such as USDT (3 to 10 ASCII letters or digits)"
        )
    return raw.strip().upper()


def clean_text(raw: object, max_len: int, *, identifier: bool = False) -> str | None:
    """A text field stripped, None when empty, refused when longer than ``max_len`` or not
    plain text (``check_plain_text``). An int is taken as its digits (a numeric uid)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError("must be a string")
    if isinstance(raw, int) and raw.bit_length() > 1024:
        raise ValueError(f"is longer than {max_len} characters")
    text = str(raw).strip()
    if not text:
        return None
    if len(text) > max_len:
        raise ValueError(f"is longer than {max_len} characters")
    return check_plain_text(text, identifier=identifier)


def check_tg_id(raw: object) -> int:
    """A Telegram user id: a positive integer (a numeric string is accepted)."""
    tg_id = strict_int(raw, "a Telegram user id (a positive integer)")
    if not 0 < tg_id < MAX_TG_ID:
        raise ValueError("must be a Telegram user id (a positive integer)")
    return tg_id
