"""The wire models: what an event, a bind and a click look like on the wire.

The server validates every request with these same models, so the client and the server can
never disagree about what a valid event is.

    >>> EventIn.model_validate({"uid": "abc", "event": "deposit", "value": "25.00"}).value
    Decimal('25.00')
"""

from __future__ import annotations

import math
import re
import time
from decimal import Decimal, InvalidOperation
from enum import Enum

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class CanonicalEvent(str, Enum):
    """The four steps of the funnel after the click. Only ``deposit`` carries money."""

    CONTACT = "contact"
    SUBSCRIBED = "subscribed"
    REGISTRATION = "registration"
    DEPOSIT = "deposit"


CANONICAL_EVENTS: tuple[str, ...] = tuple(e.value for e in CanonicalEvent)

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
MAX_UID_LEN = 128
MAX_EID_LEN = 256

_CURRENCY = re.compile(r"[A-Za-z]{3}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_value(raw: object) -> Decimal:
    """An amount from a string or a number, exact, positive and sane, as a ``Decimal``.

    Floats are taken through their shortest ``repr`` (``25.5`` -> ``Decimal('25.5')``), so a
    float never smuggles binary noise into revenue.
    """
    if isinstance(raw, bool):
        raise ValueError('must be a decimal amount such as "25.00", not a boolean')
    if isinstance(raw, float):
        raw = repr(raw)
    if isinstance(raw, (int, Decimal)):
        text = str(raw)
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise ValueError('must be a decimal amount such as "25.00" (a string or a number)')
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f'{text[:40]!r} is not a decimal amount such as "25.00"') from None
    if not value.is_finite():
        raise ValueError("must be a finite amount")
    if value <= 0:
        raise ValueError("must be greater than zero")
    if value > MAX_VALUE:
        raise ValueError(f"is absurdly large (the limit is {MAX_VALUE})")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_VALUE_DECIMALS:
        raise ValueError(f"has more than {MAX_VALUE_DECIMALS} decimal places")
    # Fixed-point form keeps the given scale: "25.00" stays "25.00", "1E+3" becomes "1000".
    return Decimal(decimal_text(value)) if "e" in text or "E" in text else value


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


#: Beyond every integer field (the text form allows 20 digits too).
_INT_BOUND = Decimal(10) ** 20


def _strict_int(raw: object, what: str) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"must be {what}, not a boolean")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*-?\d{1,20}\s*", raw):
        return int(raw)
    # Bounded before int(): turning 1e1000000 into an integer takes minutes.
    if isinstance(raw, (float, Decimal)) and math.isfinite(raw) and -_INT_BOUND < raw < _INT_BOUND:
        whole = int(raw)
        if raw == whole:
            return whole
    raise ValueError(f"must be {what}")


def _clean_text(raw: object, max_len: int) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError("must be a string")
    text = str(raw).strip()
    if not text:
        return None
    if len(text) > max_len:
        raise ValueError(f"is longer than {max_len} characters")
    if _CONTROL.search(text):
        raise ValueError("contains control characters")
    return text


class _Wire(BaseModel):
    # Unknown fields are refused: a typo such as "valeu" must not silently drop revenue.
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventIn(_Wire):
    """One event as sent to ``POST /events`` (or ``GET /e``, where ``occurred_at_ms`` is ``t``)."""

    event: CanonicalEvent
    uid: str | None = None
    value: Decimal | None = None
    currency: str = "USD"
    eid: str | None = None
    occurred_at_ms: int | None = None
    tg_id: int | None = None

    @field_validator("event", mode="before")
    @classmethod
    def _event(cls, raw: object) -> object:
        if isinstance(raw, str):
            name = raw.strip().lower()
            if name in CANONICAL_EVENTS:
                return name
            raise ValueError(
                f"unknown event {raw[:40]!r}: use one of {', '.join(CANONICAL_EVENTS)}"
            )
        raise ValueError(f"must be one of {', '.join(CANONICAL_EVENTS)}")

    @field_validator("uid", mode="before")
    @classmethod
    def _uid(cls, raw: object) -> str | None:
        return _clean_text(raw, MAX_UID_LEN)

    @field_validator("eid", mode="before")
    @classmethod
    def _eid(cls, raw: object) -> str | None:
        return _clean_text(raw, MAX_EID_LEN)

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, raw: object) -> Decimal | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return parse_value(raw)

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, raw: object) -> str:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return "USD"
        if not isinstance(raw, str) or not _CURRENCY.fullmatch(raw.strip()):
            raise ValueError("must be a three-letter ISO 4217 code such as USD or EUR")
        return raw.strip().upper()

    @field_validator("occurred_at_ms", mode="before")
    @classmethod
    def _occurred_at_ms(cls, raw: object) -> int | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return check_occurred_at_ms(_strict_int(raw, "milliseconds since the epoch (an integer)"))

    @field_validator("tg_id", mode="before")
    @classmethod
    def _tg_id(cls, raw: object) -> int | None:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return check_tg_id(raw)

    @property
    def carries_money(self) -> bool:
        return self.event is CanonicalEvent.DEPOSIT and self.value is not None


def check_tg_id(raw: object) -> int:
    """A Telegram user id: a positive integer (a numeric string is accepted)."""
    tg_id = _strict_int(raw, "a Telegram user id (a positive integer)")
    if not 0 < tg_id < MAX_TG_ID:
        raise ValueError("must be a Telegram user id (a positive integer)")
    return tg_id


class BindIn(_Wire):
    """``POST /bind``: the Telegram user ``tg_id`` arrived through the click ``uid``."""

    uid: str
    tg_id: int

    @field_validator("uid", mode="before")
    @classmethod
    def _uid(cls, raw: object) -> str:
        uid = _clean_text(raw, MAX_UID_LEN)
        if uid is None:
            raise ValueError("is required")
        return uid

    @field_validator("tg_id", mode="before")
    @classmethod
    def _tg_id(cls, raw: object) -> int:
        return check_tg_id(raw)


class ClickIn(_Wire):
    """``POST /clicks``: a click that did not come through our landing page."""

    link_slug: str | None = None
    fbclid: str | None = None
    campaign_name: str | None = None
    raw_query: str | None = None

    @field_validator("link_slug", "fbclid", "campaign_name", "raw_query", mode="before")
    @classmethod
    def _texts(cls, raw: object, info: ValidationInfo) -> str | None:
        return _clean_text(raw, _CLICK_FIELD_LIMITS[info.field_name or ""])


_CLICK_FIELD_LIMITS = {"link_slug": 64, "fbclid": 512, "campaign_name": 256, "raw_query": 4096}
