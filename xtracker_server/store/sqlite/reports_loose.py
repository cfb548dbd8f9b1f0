"""The funnel's line of events without a uid, read from the report rollup
(store/sqlite/rollup_loose.py): a window as its UTC days, its 15-minute buckets and its ends off
the grid (all of a window under 15 minutes whole), the ends from the rows themselves; a bounded
number of rows, whatever the history."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from decimal import Decimal

from xtracker_server.domain.reports import sum_from_parts
from xtracker_server.store.sqlite.reports_activity import RAW, levels
from xtracker_server.store.sqlite.rollup_activity import LOOSE, STEPS_IN, amount_parts
from xtracker_wire import MAX_VALUE_DECIMALS

__all__ = ["counts"]


#: ``levels``' kind of a window whose bucket sums overflowed: read from the inbox's index of the
#: events without a uid.
_INBOX = -100

_UNITS, _FRACTION, _SCALE = amount_parts("value")
_FROM_INBOX = (
    f"SELECT event, 1, currency, {_SCALE}, {_UNITS}, {_FRACTION} FROM inbox"
    " INDEXED BY inbox_report_unattributed WHERE space_id = ? AND occurred_at_ms >= ?"
    f" AND occurred_at_ms < ? AND uid IS NULL AND test = 0 AND event IN {STEPS_IN}"
)


def counts(
    conn: sqlite3.Connection, space_id: int, window: tuple[int, int]
) -> tuple[dict[str, int], dict[str, Decimal]]:
    """Events without a uid per step in ``[f, t)``, and the revenue of their deposits per
    currency (exact): from the rollup, or from the inbox if a bucket's sum went past SQLite's
    64-bit integers (inexact)."""
    found = _counts(conn, space_id, levels(*window))
    if found is None:
        found = _counts(conn, space_id, [(_INBOX, *window)])
    assert found is not None  # the inbox's rows are summed here, exactly
    return found


def _counts(
    conn: sqlite3.Connection, space_id: int, parts: list[tuple[int, int, int]]
) -> tuple[dict[str, int], dict[str, Decimal]] | None:
    steps: dict[str, int] = defaultdict(int)
    # per currency: integer parts, fractions (MAX_VALUE_DECIMALS digits), most decimals given
    money: dict[str, list[int]] = {}
    for kind, lo, hi in parts:
        if kind == _INBOX:
            rows = conn.execute(_FROM_INBOX, (space_id, lo, hi))
        elif kind == RAW:  # a few minutes of rows
            rows = conn.execute(
                "SELECT event, 1, currency, scale, units, fraction FROM report_loose"
                " INDEXED BY report_loose_time WHERE space_id = ? AND at_ms >= ? AND at_ms < ?",
                (space_id, lo, hi),
            )
        else:
            rows = conn.execute(
                "SELECT event, n, NULL, -1, 0, 0 FROM report_activity WHERE space_id = ?"
                f" AND link_id = ? AND event IN {STEPS_IN} AND kind = ? AND bucket >= ?"
                " AND bucket < ? AND prev_bucket = 0 UNION ALL"
                " SELECT NULL, 0, currency, scale, units, fraction FROM report_activity_money"
                " WHERE space_id = ? AND link_id = ? AND kind = ? AND bucket >= ? AND bucket < ?"
                " AND n != 0",
                (space_id, LOOSE, kind, lo, hi) * 2,
            )
        for event, n, currency, scale, units, fraction in rows:
            if event is not None:
                steps[event] += n
            if event not in (None, "deposit") or not currency or scale is None or scale < 0:
                continue
            if type(units) is not int or type(fraction) is not int:
                return None  # a bucket's sum past 64-bit integers: REAL, inexact
            acc = money.setdefault(currency, [0, 0, 0])
            acc[0], acc[1], acc[2] = acc[0] + units, acc[1] + fraction, max(acc[2], scale)
    revenue = {
        currency: sum_from_parts(units, fraction, scale, MAX_VALUE_DECIMALS)
        for currency, (units, fraction, scale) in sorted(money.items())
    }
    return {e: n for e, n in steps.items() if n}, revenue
