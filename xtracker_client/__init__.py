"""XTRACKER client: report conversions from a Telegram bot, without ever losing one.

    from xtracker_client import XTracker, parse_start_payload

    tracker = XTracker("https://track.example.com", "xt_sk_…")
    uid = parse_start_payload(message.text)          # "/start fb_<uid>" -> "<uid>"
    tracker.bind(uid, tg_id=message.from_user.id)
    tracker.contact(uid)

``__all__`` is what a bot uses. What a valid event is (the wire models and the limits of each
field) is defined in ``xtracker_wire``, which the server validates with too.
"""

# httpx encodes host names with the "idna" codec, imported on first use. Imported here, so a
# fork can never catch the sender thread half way through that import.
import encodings.idna  # noqa: F401
import warnings
from typing import TYPE_CHECKING, Any

import xtracker_wire
from xtracker_client._async_client import AsyncXTracker
from xtracker_client._client import XTracker
from xtracker_client._core import Answer, DeliveryError, FlushResult, Receipt, Stats
from xtracker_client._exceptions import (
    APIError,
    ClientClosedError,
    ConfigurationError,
    DeeplinkError,
    InvalidEventError,
    SpoolFullError,
    TransportError,
    XTrackerError,
)
from xtracker_client._exit import set_exit_timeout
from xtracker_client._retry import Backoff
from xtracker_client._spool import DeadLetter
from xtracker_client._testing import AsyncRecordingXTracker, RecordedCall, RecordingXTracker
from xtracker_client._uid import deeplink, parse_start_payload
from xtracker_wire import CanonicalEvent, __version__

__all__ = [
    "APIError",
    "Answer",
    "AsyncRecordingXTracker",
    "AsyncXTracker",
    "Backoff",
    "CanonicalEvent",
    "ClientClosedError",
    "ConfigurationError",
    "DeadLetter",
    "DeeplinkError",
    "DeliveryError",
    "FlushResult",
    "InvalidEventError",
    "Receipt",
    "RecordedCall",
    "RecordingXTracker",
    "SpoolFullError",
    "Stats",
    "TransportError",
    "XTracker",
    "XTrackerError",
    "__version__",
    "deeplink",
    "parse_start_payload",
    "set_exit_timeout",
]

#: Names this package exported for the server until 0.1.0; they live in ``xtracker_wire`` now.
_MOVED_TO_WIRE = frozenset(
    {
        "CANONICAL_EVENTS",
        "BindIn",
        "ClickIn",
        "EventIn",
        "check_currency",
        "check_occurred_at_ms",
        "check_plain_text",
        "decimal_text",
        "parse_value",
    }
)

if not TYPE_CHECKING:  # a type checker reports the old names as missing: the warning, earlier

    def __getattr__(name: str) -> Any:
        if name in _MOVED_TO_WIRE:
            warnings.warn(
                f"xtracker_client.{name} is deprecated: import it from xtracker_wire",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(xtracker_wire, name)
        raise AttributeError(f"module 'xtracker_client' has no attribute {name!r}")
