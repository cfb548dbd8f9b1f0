"""XTRACKER client: report conversions from a Telegram bot, without ever losing one.

    from xtracker_client import XTracker, parse_start_payload

    tracker = XTracker("https://track.example.com", "xt_sk_…")
    uid = parse_start_payload(message.text)          # "/start fb_<uid>" -> "<uid>"
    tracker.bind(uid, message.from_user.id)
    tracker.contact(uid)

The wire models here are the single definition of a valid event; the server validates with them.
"""

# httpx encodes host names with the "idna" codec, imported on first use. Imported here, so a
# fork can never catch the sender thread half way through that import.
import encodings.idna  # noqa: F401

from xtracker_client._async_client import AsyncXTracker
from xtracker_client._client import XTracker
from xtracker_client._core import DeliveryError, Receipt, Stats
from xtracker_client._events import (
    CANONICAL_EVENTS,
    BindIn,
    CanonicalEvent,
    ClickIn,
    EventIn,
    check_currency,
    check_occurred_at_ms,
    check_plain_text,
    decimal_text,
    parse_value,
)
from xtracker_client._exceptions import (
    APIError,
    ConfigurationError,
    InvalidEventError,
    SpoolFullError,
    TransportError,
    XTrackerError,
)
from xtracker_client._retry import Backoff
from xtracker_client._spool import DeadLetter
from xtracker_client._uid import deeplink, parse_start_payload
from xtracker_client._version import __version__

__all__ = [
    "CANONICAL_EVENTS",
    "APIError",
    "AsyncXTracker",
    "Backoff",
    "BindIn",
    "CanonicalEvent",
    "ClickIn",
    "ConfigurationError",
    "DeadLetter",
    "DeliveryError",
    "EventIn",
    "InvalidEventError",
    "Receipt",
    "SpoolFullError",
    "Stats",
    "TransportError",
    "XTracker",
    "XTrackerError",
    "__version__",
    "check_currency",
    "check_occurred_at_ms",
    "check_plain_text",
    "decimal_text",
    "deeplink",
    "parse_start_payload",
    "parse_value",
]
