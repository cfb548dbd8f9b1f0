"""XTRACKER client: report conversions from a Telegram bot.

The wire models here are the single definition of a valid event; the server validates with them.
"""

from xtracker_client._events import (
    CANONICAL_EVENTS,
    BindIn,
    CanonicalEvent,
    ClickIn,
    EventIn,
    check_occurred_at_ms,
    decimal_text,
    parse_value,
)

__version__ = "0.1.0"

__all__ = [
    "CANONICAL_EVENTS",
    "BindIn",
    "CanonicalEvent",
    "ClickIn",
    "EventIn",
    "__version__",
    "check_occurred_at_ms",
    "decimal_text",
    "parse_value",
]
