"""XTRACKER's wire contract: what an event, a bind and a click look like on the wire, the
limits of every field, and Telegram's deep-link rules that carry a uid to the bot.

Both packages of the ``xtracker`` distribution import it: the client (``xtracker_client``)
checks every call with these models before it stores the event, and the server
(``xtracker_server``) validates every request with them, so the two can never disagree about
what a valid event is. It depends on pydantic only, and imports nothing of either package.

    >>> from xtracker_wire import EventIn
    >>> EventIn.model_validate({"uid": "abc", "event": "deposit", "value": "25.00"}).value
    Decimal('25.00')

``__version__`` is the distribution's version, which both packages report.
"""

from typing import TYPE_CHECKING, Any

from xtracker_wire._events import (
    CANONICAL_EVENTS,
    EVENT_NAMES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    REVERSAL,
    CanonicalEvent,
)
from xtracker_wire._fields import (
    MAX_EID_LEN,
    MAX_FUTURE_SKEW_MS,
    MAX_TG_ID,
    MAX_UID_LEN,
    MAX_VALUE,
    MAX_VALUE_DECIMALS,
    MIN_OCCURRED_AT_MS,
    check_currency,
    check_occurred_at_ms,
    check_plain_text,
    check_tg_id,
    decimal_text,
    parse_value,
)
from xtracker_wire._telegram import (
    BOT_USERNAME,
    START_PAYLOAD_MAX,
    STARTAPP_PAYLOAD_MAX,
    is_start_payload,
)
from xtracker_wire._version import __version__

if TYPE_CHECKING:
    from xtracker_wire._models import (
        BindIn,
        ClickIn,
        EventBatchIn,
        EventBatchOut,
        EventIn,
        EventResult,
    )

#: The names of ``_models``, imported on first use: the models are pydantic classes, whose
#: creation is most of what importing this package costs, and a command of the server that
#: needs a limit, an event name or a check of ``_fields`` needs none of them.
_MODELS = frozenset(
    {
        "BindIn",
        "ClickIn",
        "EventBatchIn",
        "EventBatchOut",
        "EventIn",
        "EventResult",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        from xtracker_wire import _models

        return getattr(_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BOT_USERNAME",
    "CANONICAL_EVENTS",
    "EVENT_NAMES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EID_LEN",
    "MAX_FUTURE_SKEW_MS",
    "MAX_TG_ID",
    "MAX_UID_LEN",
    "MAX_VALUE",
    "MAX_VALUE_DECIMALS",
    "MIN_OCCURRED_AT_MS",
    "REVERSAL",
    "STARTAPP_PAYLOAD_MAX",
    "START_PAYLOAD_MAX",
    "BindIn",
    "CanonicalEvent",
    "ClickIn",
    "EventBatchIn",
    "EventBatchOut",
    "EventIn",
    "EventResult",
    "__version__",
    "check_currency",
    "check_occurred_at_ms",
    "check_plain_text",
    "check_tg_id",
    "decimal_text",
    "is_start_payload",
    "parse_value",
]
