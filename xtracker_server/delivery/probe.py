"""``destination test``: send one synthetic event to a destination now, outside the outbox."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from aiohttp.abc import AbstractResolver

from xtracker_server.clock import now_ms
from xtracker_server.config import Settings
from xtracker_server.delivery.adapters import Adapter
from xtracker_server.delivery.sender import Answer, Sender
from xtracker_server.domain.entities import Destination
from xtracker_server.domain.outbound import ClickInfo, DeliveryContext, Verdict
from xtracker_server.exceptions import XTrackerServerError


@dataclass(frozen=True)
class ProbeResult:
    verdict: Verdict
    answer: Answer
    event_id: str


def probe_context(destination: Destination, base_url: str) -> DeliveryContext:
    """A recognisable test deposit (or the first event the map sends)."""
    event = next(
        (e for e in ("deposit", "registration", "subscribed", "contact")
         if destination.event_map.get(e)),
        "deposit",
    )  # fmt: skip
    now = now_ms()
    return DeliveryContext(
        event_id=f"xt_test_{secrets.token_hex(8)}",
        event_name=destination.event_map.get(event) or event,
        canonical=event,
        occurred_at_ms=now,
        uid="xtracker-test",
        tg_id=None,
        eid="xtracker-test",
        value="1.00" if event == "deposit" else None,
        currency="USD" if event == "deposit" else None,
        click=ClickInfo(
            uid="xtracker-test",
            link="xtracker-test",
            landing_url=f"{base_url}/l/xtracker-test",
            created_ms=now,
            ip="203.0.113.10",
            user_agent="xtracker destination test",
        ),
    )


class ProbeRefused(XTrackerServerError, ValueError):
    pass


async def probe(
    destination: Destination,
    settings: Settings,
    *,
    test_event_code: str | None = None,
    live: bool = False,
    resolver: AbstractResolver | None = None,
) -> ProbeResult:
    """Send the test event. A pixel's test goes with a test event code (the destination's, or
    ``test_event_code``), so Events Manager shows it apart; without one the test would count
    as a real 1.00 USD Purchase, which is refused unless ``live``. It is sent by the same
    ``Sender`` as deliveries, so the same address guard applies to the destination and its
    proxy (``resolver``: see ``Sender``)."""
    if destination.kind.value == "fb_capi":
        code = test_event_code or destination.config.get("test_event_code")
        if not code and not live:
            raise ProbeRefused(
                "this pixel has no test_event_code, so the test would count as a real purchase;"
                " pass a test event code from Events Manager, or send it live on purpose"
            )
        if code:
            destination = replace(
                destination, config={**destination.config, "test_event_code": code}
            )
    sender = Sender(
        timeout_s=settings.delivery_timeout_s,
        allow_private=settings.allow_private_destinations,
        resolver=resolver,
    )
    try:
        adapter = Adapter(destination, settings)
        ctx = probe_context(destination, settings.base_url)
        answer = await sender.send(adapter.request([ctx]), proxy=destination.proxy)
        return ProbeResult(adapter.classify(answer), answer, ctx.event_id)
    finally:
        await sender.close()
