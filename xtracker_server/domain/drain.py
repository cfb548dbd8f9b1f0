"""The order in which a destination's due deliveries go out (docs/destinations.md, "Drain
order and pace").

Oldest due first, so that a backlog (after the worker, the server or a destination was down)
is sent in the order its events happened. But a backlog of millions takes a while, and the
events that arrive meanwhile must not wait behind all of it: each claim reserves up to half of
its rows for the *newest lane*, the deliveries that became due within the last
``FRESH_WINDOW_S`` (new events, and retries whose wait just ended), oldest first within the
lane too. What the newest lane leaves unused goes to the backlog, so a backlog drains at the
worker's full rate less what new events take, and new events are sent within a claim or two of
their arrival as long as they arrive at less than half the worker's rate. Past that, the
newest lane's surplus ages out of the window into the backlog and is sent in its turn.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Deliveries that became due this recently are in the newest lane.
FRESH_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """How one claim of ``limit`` rows is split: up to ``fresh_limit`` due after
    ``fresh_since_ms`` (the newest lane), then the oldest due for the rest."""

    limit: int
    fresh_limit: int
    fresh_since_ms: int


def claim_plan(limit: int, now_ms: int) -> ClaimPlan:
    """Half of a claim (rounded down: a claim of one row goes to the backlog) for the newest
    lane."""
    return ClaimPlan(limit, limit // 2, now_ms - int(FRESH_WINDOW_S * 1000))
