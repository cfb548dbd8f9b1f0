"""The delivery health report's reads: per destination of a space, deliveries by status, the
last success and error, and the recent attempts (services/reports.py ``deliveries_report``)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence

from xtracker_server.domain.entities import DestinationHealth
from xtracker_server.domain.reports import RECENT_MS

__all__ = ["RECENT_LIMIT", "delivery_health"]


#: Delivery health looks at attempts of the last ``RECENT_MS`` (domain/reports.py), and at
#: most this many per space.
RECENT_LIMIT = 20_000


def delivery_health(
    conn: sqlite3.Connection, space_id: int, now_ms: int
) -> list[DestinationHealth]:
    dests = conn.execute(
        "SELECT id, name, kind, enabled, health_reason, pruned_sent, pruned_failed,"
        " pruned_last_sent_ms FROM destinations WHERE space_id = ? ORDER BY id",
        (space_id,),
    ).fetchall()
    recent: dict[int, list[sqlite3.Row]] = defaultdict(list)
    for row in conn.execute(
        "SELECT d.destination_id, a.at_ms, a.latency_ms, a.outcome, a.status_code, a.error"
        " FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
        " WHERE a.space_id = ? AND a.at_ms >= ? ORDER BY a.at_ms DESC, a.id DESC LIMIT ?",
        (space_id, now_ms - RECENT_MS, RECENT_LIMIT),
    ):
        recent[row[0]].append(row)
    out = []
    for d in dests:
        # Deliveries pruned by retention (housekeeping.py) still count: the figures of a
        # destination mean the same whatever its age.
        counts = {"pending": 0, "retrying": 0, "sent": d["pruned_sent"],
                  "failed_permanently": d["pruned_failed"]}  # fmt: skip
        for status, n in conn.execute(
            "SELECT status, count(*) FROM deliveries WHERE destination_id = ? GROUP BY status",
            (d["id"],),
        ):
            counts[status] += int(n)
        last_success = conn.execute(
            "SELECT max(sent_ms) FROM deliveries WHERE destination_id = ? AND status = 'sent'",
            (d["id"],),
        ).fetchone()[0]
        if d["pruned_last_sent_ms"] is not None:
            last_success = max(last_success or 0, d["pruned_last_sent_ms"])
        attempts = recent.get(d["id"], [])
        failed = [a for a in attempts if a["outcome"] != "sent"]
        last_error, last_error_ms = None, None
        if failed:
            last_error = failed[0]["error"] or f"HTTP {failed[0]['status_code']}"
            last_error_ms = failed[0]["at_ms"]
        else:  # nothing failed lately: the latest delivery that is still failing, if any
            row = conn.execute(
                "SELECT last_error, updated_ms FROM deliveries WHERE destination_id = ?"
                " AND status IN ('retrying', 'failed_permanently') AND last_error IS NOT NULL"
                " ORDER BY updated_ms DESC LIMIT 1",
                (d["id"],),
            ).fetchone()
            if row is not None:
                last_error, last_error_ms = row[0], row[1]
        answered = sorted(a["latency_ms"] for a in attempts if a["status_code"] is not None)
        out.append(
            DestinationHealth(
                id=d["id"],
                name=d["name"],
                kind=d["kind"],
                enabled=bool(d["enabled"]),
                health_reason=d["health_reason"],
                counts=counts,
                last_success_ms=last_success,
                last_error=last_error,
                last_error_ms=last_error_ms,
                recent_attempts=len(attempts),
                recent_failures=len(failed),
                median_latency_ms=_median(answered),
            )
        )
    return out


def _median(values: Sequence[int]) -> int | None:
    if not values:
        return None
    mid = len(values) // 2
    if len(values) % 2:
        return int(values[mid])
    return round((values[mid - 1] + values[mid]) / 2)
