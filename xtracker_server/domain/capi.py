"""Facebook Conversions API: events, requests and answers, as pure functions (REFERENCE.md).

``capi_event`` turns one ``DeliveryContext`` into one server event, exactly as the official SDK's
``facebook_business.adobjects.serverside.Event(...).normalize()`` would build it from the same data
(the tests hold the two side by side); ``capi_request`` wraps up to ``MAX_BATCH`` of them in one
POST; ``classify_capi`` reads Meta's answer.

How a batch is sent:

- One invalid event makes Meta reject the whole batch. When a batch of more than one event comes
  back with a permanent verdict (``Outcome.FAIL``), the worker splits it with ``split_batch`` and
  sends each half again, and again, until the bad event is alone and fails on its own: the good
  events still go, at a cost of about log2(n) extra requests per bad event. RETRY is not split
  (the same batch is tried again later; ``event_id`` keeps Meta from counting anything twice)
  and neither is HOLD (a broken token or permission fails every event alike).
- Events older than seven days fail the whole request (code 100, subcode 2804003), so the worker
  asks ``too_old`` first and fails such events at once instead of sending them.

Example::

    events = [capi_event(ctx) for ctx in batch]
    request = capi_request(events, graph_url="https://graph.facebook.com", api_version="v21.0",
                           pixel_id="123", access_token=token, test_event_code=None)
    verdict = classify_capi(status, body)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote

from xtracker_server.domain.outbound import DeliveryContext, OutboundRequest, Outcome, Verdict
from xtracker_server.domain.query import whole_number
from xtracker_server.domain.retry import RETRYABLE_STATUSES
from xtracker_wire import CanonicalEvent

#: Events per request, Meta's limit.
MAX_BATCH = 1000
#: Meta refuses events older than this (code 100, subcode 2804003).
MAX_EVENT_AGE_S = 7 * 24 * 3600
#: Margin kept below ``MAX_EVENT_AGE_S``: an event judged young enough must not cross the limit
#: while its request is on the way (or waits behind a slow batch).
AGE_MARGIN_S = 60
TOO_OLD_REASON = "older than 7 days: the Conversions API rejects it (code 100, subcode 2804003)"

#: The ``action_source`` values Meta accepts.
ACTION_SOURCES = frozenset(
    {
        "website",
        "app",
        "chat",
        "system_generated",
        "business_messaging",
        "email",
        "phone_call",
        "physical_store",
        "other",
    }
)

#: Graph error codes worth another try: unknown/service errors (1, 2), rate limits (4, 17, 341,
#: 613: Graph's generic "calls exceeded the rate limit") and a temporary block (368).
RETRY_CODES = frozenset({1, 2, 4, 17, 341, 368, 613})
#: An invalid or expired access token: every event of the destination fails until it is updated.
TOKEN_CODE = 190
#: Permission errors (10 and 200-299): as broken for every event as a bad token.
PERMISSION_CODES = frozenset({10, *range(200, 300)})

_REASON_MAX = 300
_COUNTRY = re.compile(r"[a-z]{2}")
_CURRENCY = re.compile(r"[a-z]{3}")

T = TypeVar("T")


def sha256_normalized(value: str) -> str:
    """SHA-256 hex of a value trimmed and lower-cased, Meta's normalization for user data.

    >>> sha256_normalized(" John_Smith@gmail.com ")
    '62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f'
    """
    return hashlib.sha256(value.strip().lower().encode("utf-8")).hexdigest()


def external_id(ctx: DeliveryContext) -> str | None:
    """The hashed ``external_id``: the Telegram user when known, else the click's uid.

    The Telegram id names the person across clicks and devices, so every event of one user
    carries the same id; the uid (one per click) is the fallback for an unbound click. Both go
    through the same trim-and-lower-case as every other user field (the uid loses its case, which
    costs nothing for a matching key), so the hash is what Meta's pixel would make of it.
    """
    if ctx.tg_id is not None:
        return sha256_normalized(str(ctx.tg_id))
    if ctx.uid:
        return sha256_normalized(ctx.uid)
    return None


def json_number(value: str) -> float | int:
    """An exact decimal amount as the JSON number Meta's ``value`` wants.

    A float when its shortest form reads back as the same amount (``"25.00"`` -> ``25.0``, every
    amount of up to 15 significant digits); else, for a whole amount, the exact ``int``; else
    (more digits than a double holds, e.g. ``"123456789012.12345678"``) the nearest float, which
    is what any JSON reader, Meta's included, would make of the exact text anyway.
    """
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"value {value[:40]!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise ValueError(f"value {value[:40]!r} is not a finite amount")
    as_float = float(amount)
    if Decimal(repr(as_float)) == amount:
        return as_float
    if amount == amount.to_integral_value():
        return int(amount)
    return as_float


def capi_event(ctx: DeliveryContext, *, action_source: str = "website") -> dict[str, Any]:
    """One server event for the ``data`` list of a CAPI request.

    ``fbc``, ``fbp``, ``client_ip_address`` and ``client_user_agent`` go as they are;
    ``external_id`` and ``country`` hashed, in one-element lists, as the SDK sends them. A
    deposit with a value carries ``custom_data`` ``value`` (a number, see ``json_number``),
    ``currency`` (lower-cased, as the SDK does) and ``order_id`` (the event's ``eid``, the
    partner's transaction id, when given). Absent fields are left out, never sent empty.
    """
    if action_source not in ACTION_SOURCES:
        raise ValueError(
            f"action_source {action_source!r} is not one Meta accepts: "
            + ", ".join(sorted(ACTION_SOURCES))
        )
    click = ctx.click
    event: dict[str, Any] = {
        "event_name": ctx.event_name,
        "event_time": ctx.occurred_at_ms // 1000,
        "event_id": ctx.event_id,
        "action_source": action_source,
    }
    if click.landing_url:
        event["event_source_url"] = click.landing_url

    user_data: dict[str, Any] = {}
    for key, raw in (
        ("fbc", click.fbc),
        ("fbp", click.fbp),
        ("client_ip_address", click.ip),
        ("client_user_agent", click.user_agent),
    ):
        if raw:
            user_data[key] = raw
    ext_id = external_id(ctx)
    if ext_id is not None:
        user_data["external_id"] = [ext_id]
    country = (click.country or "").strip().lower()
    # "xx" is what CDNs and GeoIP databases say for "unknown"; anything not two letters is noise.
    if _COUNTRY.fullmatch(country) and country != "xx":
        user_data["country"] = [sha256_normalized(country)]
    event["user_data"] = user_data

    if ctx.canonical == CanonicalEvent.DEPOSIT.value and ctx.value is not None:
        # The ingress defaults the currency to USD (docs/api.md); a Purchase without one
        # would fail the whole batch (subcode 2804010).
        currency = (ctx.currency or "USD").strip().lower()
        if not _CURRENCY.fullmatch(currency):
            raise ValueError(f"currency {ctx.currency!r} is not an ISO 4217 code such as USD")
        custom_data: dict[str, Any] = {"value": json_number(ctx.value), "currency": currency}
        if ctx.eid:
            custom_data["order_id"] = ctx.eid
        event["custom_data"] = custom_data
    return event


def missing_for_website(ctx: DeliveryContext) -> list[str]:
    """The fields Meta requires of a ``website`` event that this one lacks (none when it came
    through a landing page): an event without a click cannot be a website event."""
    missing = []
    if not ctx.click.landing_url:
        missing.append("event_source_url")
    if not ctx.click.user_agent:
        missing.append("client_user_agent")
    return missing


def too_old(ctx: DeliveryContext, now_ms: int) -> bool:
    """Whether Meta would refuse the event for its age (more than 7 days, less a minute's
    margin); one such event would fail the whole request it travels in."""
    event_time_s = ctx.occurred_at_ms // 1000
    return now_ms // 1000 - event_time_s > MAX_EVENT_AGE_S - AGE_MARGIN_S


def capi_request(
    events: list[dict[str, Any]],
    *,
    graph_url: str,
    api_version: str,
    pixel_id: str,
    access_token: str,
    test_event_code: str | None,
) -> OutboundRequest:
    """The POST to ``{graph_url}/{api_version}/{pixel_id}/events`` carrying ``events``.

    The access token goes in the JSON body, not the URL, so it never lands in a proxy's or a
    server's access log.
    """
    if not events:
        raise ValueError("a CAPI request needs at least one event")
    if len(events) > MAX_BATCH:
        raise ValueError(
            f"{len(events)} events in one request: the Conversions API takes at most {MAX_BATCH}"
        )
    url = (
        f"{graph_url.rstrip('/')}/{quote(api_version.strip('/'), safe='.')}"
        f"/{quote(pixel_id, safe='')}/events"
    )
    body: dict[str, Any] = {"data": events, "access_token": access_token}
    if test_event_code:
        body["test_event_code"] = test_event_code
    return OutboundRequest(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json"},
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(),
    )


def _graph_error(body: bytes) -> dict[str, Any] | None:
    """The ``error`` object of a Graph API answer, or None for anything else (garbage included)."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    error = parsed.get("error")
    return error if isinstance(error, dict) else None


def _int_or_none(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        return whole_number(raw.strip())
    return None


def _describe(status: int, error: dict[str, Any]) -> str:
    """``HTTP 400, code 100/2804003: Invalid parameter: <user message> (fbtrace_id X)``, short."""
    code, subcode = _int_or_none(error.get("code")), _int_or_none(error.get("error_subcode"))
    parts = [f"HTTP {status}"]
    if code is not None:
        parts.append(f"code {code}" + (f"/{subcode}" if subcode is not None else ""))
    text = ": ".join(
        str(error[key]).strip()
        for key in ("message", "error_user_msg")
        if isinstance(error.get(key), str) and error[key].strip()
    )
    trace = error.get("fbtrace_id")
    tail = f" (fbtrace_id {trace})" if isinstance(trace, str) and trace else ""
    head = ", ".join(parts) + (f": {text}" if text else "")
    room = _REASON_MAX - len(tail)
    if len(head) > room:
        head = head[: room - 1] + "…"
    return head + tail


def classify_capi(
    status: int | None,
    body: bytes,
    error: str | None = None,
    retry_after_s: float | None = None,
) -> Verdict:
    """What Meta's answer means for the events of the request.

    - no answer (``status`` None: timeout, refused connection) -> RETRY;
    - 2xx -> SENT;
    - code 190 (token invalid or expired), 10 or 200-299 (permission) -> HOLD, and the
      destination is flagged unhealthy with what to do: every event would fail alike;
    - codes 1, 2, 4, 17, 341, 368, 613, ``is_transient: true``, 408, 429, any 5xx -> RETRY;
    - anything else (code 100, a bad parameter; other 4xx) -> FAIL with code, subcode, message
      and ``fbtrace_id``.

    A body that is not Graph's error JSON is judged by the status alone.
    """
    if status is None:
        return Verdict(Outcome.RETRY, error or "no answer", retry_after_s)
    if 200 <= status < 300:
        received = None
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                received = _int_or_none(parsed.get("events_received"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
        suffix = f", events_received {received}" if received is not None else ""
        return Verdict(Outcome.SENT, f"HTTP {status}{suffix}")

    graph_error = _graph_error(body) or {}
    reason = _describe(status, graph_error)
    code = _int_or_none(graph_error.get("code"))
    if code == TOKEN_CODE:
        return Verdict(
            Outcome.HOLD,
            reason,
            unhealthy=(
                "access token invalid or expired (code 190): "
                "update the destination's token with a new system-user token"
            ),
        )
    if code in PERMISSION_CODES:
        return Verdict(
            Outcome.HOLD,
            reason,
            unhealthy=(
                f"permission denied (code {code}): the token may not send events to this "
                "pixel; give its system user access to the pixel, then update the token"
            ),
        )
    if (
        code in RETRY_CODES
        or graph_error.get("is_transient") is True
        or status in RETRYABLE_STATUSES
    ):
        return Verdict(Outcome.RETRY, reason, retry_after_s)
    return Verdict(Outcome.FAIL, reason)


def split_batch(events: Sequence[T]) -> tuple[list[T], list[T]]:
    """Two halves of a rejected batch, to send apart (see the module docstring).

    >>> split_batch([1, 2, 3])
    ([1], [2, 3])
    """
    if len(events) < 2:
        raise ValueError("a batch of fewer than two events cannot be split")
    middle = len(events) // 2
    return list(events[:middle]), list(events[middle:])
