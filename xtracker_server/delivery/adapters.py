"""One adapter per destination kind: which requests carry a set of deliveries, and what a
destination's answer means. The requests themselves are built by the pure domain code."""

from __future__ import annotations

import time
from dataclasses import dataclass

from xtracker_server.config import Settings
from xtracker_server.delivery.sender import Answer
from xtracker_server.domain import capi
from xtracker_server.domain.destinations import DestinationKind
from xtracker_server.domain.entities import Destination
from xtracker_server.domain.outbound import DeliveryContext, OutboundRequest, Outcome, Verdict
from xtracker_server.domain.retry import classify_http
from xtracker_server.domain.s2s import s2s_request
from xtracker_server.domain.webhook import webhook_request

#: Deliveries in flight per destination, and how many one request may carry. The others (webhook,
#: S2S): one each, ``Settings.delivery_concurrency`` in flight (8 by default).
INFLIGHT = {DestinationKind.FB_CAPI: 2 * capi.MAX_BATCH}
DEFAULT_INFLIGHT = 8
BATCH = {DestinationKind.FB_CAPI: capi.MAX_BATCH}
#: Deliveries a worker holds per destination (leased, not yet answered), as a multiple of those
#: in flight: the next ones are claimed and read while the current ones are being sent, and
#: outcomes are written while the next ones go out. CAPI batches are already large. For the
#: others, what is held must cover a whole claim's round trip (due, claim, read: three store
#: calls, each waiting for the writer or a reader, ~100 ms on a loaded machine) at the rate
#: the destination takes: 32 rounds (256 webhooks at 8 in flight, claimed 64 at a time) keep a
#: thousand a second flowing through such a round trip, where 8 rounds (64) stalled at ~600
#: (issue 14). A held delivery that would be sent after its lease has run out is let go and
#: given back instead (``lease_left_for_a_request``): the lease does not grow with the hold.
HOLD_AHEAD = {DestinationKind.FB_CAPI: 1}
DEFAULT_HOLD_AHEAD = 32
#: Rounds of requests (each up to the delivery timeout) that a lease covers: a held delivery
#: waits a few rounds, not all of them, unless the destination times out again and again.
LEASE_ROUNDS = 9


def inflight_limit(kind: DestinationKind, concurrency: int = DEFAULT_INFLIGHT) -> int:
    """Deliveries in flight to one destination (``concurrency``: the setting's requests)."""
    return INFLIGHT.get(kind, concurrency)


def batch_size(kind: DestinationKind) -> int:
    return BATCH.get(kind, 1)


def requests_in_flight(kind: DestinationKind, concurrency: int = DEFAULT_INFLIGHT) -> int:
    """Requests at once to one destination."""
    return max(1, inflight_limit(kind, concurrency) // batch_size(kind))


def hold_limit(kind: DestinationKind, concurrency: int = DEFAULT_INFLIGHT) -> int:
    """Deliveries one worker may hold (claimed, not yet answered) for one destination."""
    return inflight_limit(kind, concurrency) * HOLD_AHEAD.get(kind, DEFAULT_HOLD_AHEAD)


def min_claim(kind: DestinationKind, concurrency: int = DEFAULT_INFLIGHT) -> int:
    """While a worker holds some deliveries of a destination, it claims more only when this
    many are free: a request's worth, and at least a quarter of what it may hold."""
    return max(batch_size(kind), hold_limit(kind, concurrency) // 4)


@dataclass(frozen=True)
class Adapter:
    destination: Destination
    settings: Settings

    def request(self, items: list[DeliveryContext]) -> OutboundRequest:
        """The one request that carries ``items`` (one item, except for CAPI batches)."""
        dest, cfg = self.destination, self.destination.config
        if dest.kind is DestinationKind.FB_CAPI:
            source = cfg.get("action_source", "website")
            return capi.capi_request(
                [capi.capi_event(ctx, action_source=source) for ctx in items],
                graph_url=self.settings.fb_graph_url.rstrip("/"),
                api_version=self.settings.fb_api_version,
                pixel_id=cfg["pixel_id"],
                access_token=dest.secret or "",
                test_event_code=cfg.get("test_event_code"),
            )
        (ctx,) = items
        if dest.kind is DestinationKind.WEBHOOK:
            return webhook_request(
                ctx,
                url=cfg["url"],
                method=cfg.get("method", "POST"),
                secret=dest.secret or "",
                extra_headers=cfg.get("headers", {}),
                now_s=int(time.time()),
            )
        return s2s_request(cfg["url_template"], cfg.get("method", "GET"), ctx)

    def classify(self, answer: Answer) -> Verdict:
        kind = self.destination.kind
        if kind is DestinationKind.FB_CAPI and not answer.refused:
            return capi.classify_capi(
                answer.status, answer.body, answer.error, answer.retry_after_s
            )
        expected = (
            self.destination.config.get("expected_status", 200)
            if kind is DestinationKind.S2S_POSTBACK
            else None
        )
        verdict = classify_http(
            answer.status, expected=expected, error=answer.error, retry_after_s=answer.retry_after_s
        )
        if answer.refused:  # a forbidden address or a bad URL is not going to get better
            return Verdict(Outcome.FAIL, answer.error or "refused")
        return verdict

    def refusal(self, ctx: DeliveryContext, now_ms: int) -> str | None:
        """Why this event cannot be sent to this destination at all (it fails permanently
        without a request), or None. Checked per event, so one bad event never sinks a batch."""
        if self.destination.kind is not DestinationKind.FB_CAPI:
            return None
        if capi.too_old(ctx, now_ms):
            return capi.TOO_OLD_REASON
        source = self.destination.config.get("action_source", "website")
        missing = capi.missing_for_website(ctx) if source == "website" else []
        if missing:
            return (
                f"a website event needs {' and '.join(missing)}: this event has no landing"
                " click (use action_source chat or system_generated for such events)"
            )
        try:
            capi.capi_event(ctx, action_source=source)
        except ValueError as exc:
            return f"not a valid Conversions API event: {exc}"
        return None
