"""The queries behind the reports (docs/reports.md). Read-only; every one is scoped by space.

The funnel, the per-link table and the series read ``report_steps`` (the rollup of
``store/rollup.py``, in the attached ``reports`` file; callers bring it up to date first): one
row per attributed event, keyed (space, link, step, time) and carrying the time of
the uid's previous event of the same step (``prev_ms``). So:

- distinct uids with a step in ``[from, to)`` = rows in the window with ``prev_ms`` NULL or
  before ``from`` (each uid's first event of the step inside the window);
- first deposits = deposit rows in the window with ``prev_ms`` NULL (the uid's first ever);
- a uid belongs to one link (its click's), so per-link numbers add up to the space's; the
  per-link table is one pass in key order (no sort), the funnel one count per step.

Money is summed exactly in SQL: an amount is fixed-point text with at most
``MAX_VALUE_DECIMALS`` (8) decimals, so the rollup stores it as two exact integers, its integer
part (``units``) and its fraction as 8 digits (``fraction``), plus how many decimals it was
given (``scale``); their sums are exact too, and ``domain.reports.sum_from_parts`` puts the
total back together as a ``Decimal``. SQLite raises on integer overflow rather than rounding
(over 9 million deposits of the largest accepted amount); then the same rows are summed with
Python integers instead.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from xtracker_client import CANONICAL_EVENTS
from xtracker_client._events import MAX_VALUE_DECIMALS
from xtracker_server.domain.query import whole_number
from xtracker_server.domain.reports import FunnelCounts, LinkRow, Window, sum_from_parts
from xtracker_server.store.rollup import amount_parts

_EVENTS_IN = "(" + ", ".join(f"'{e}'" for e in CANONICAL_EVENTS) + ")"
_D = MAX_VALUE_DECIMALS
#: Every link of a space, and 0 (no link): lets SQLite seek each link's range of the key.
_ALL_LINKS = "link_id IN (SELECT 0 UNION ALL SELECT id FROM links WHERE space_id = ?)"
#: No link: ``report_steps.link_id`` of events whose uid has no click on a link.
NO_LINK = 0


def _of_link(space_id: int, link_id: int | None) -> tuple[str, tuple[int, ...]]:
    """The ``link_id`` condition and its arguments: one link, or all of the space's."""
    return (_ALL_LINKS, (space_id,)) if link_id is None else ("link_id = ?", (link_id,))


_MONEY = "sum(units), sum(fraction), max(scale)"
#: The same split of a ``value`` column as the rollup's.
_AMOUNT = ", ".join(
    f"{sql} AS {name}"
    for sql, name in zip(amount_parts("value"), ("units", "fraction", "scale"), strict=True)
)


def _is_overflow(exc: sqlite3.Error) -> bool:
    return "overflow" in str(exc).lower()


@dataclass
class _Deposits:
    rows: int = 0
    firsts: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)


def _deposits(
    conn: sqlite3.Connection, key: str, where: str, args: Sequence[Any], *, prefix: str = ""
) -> dict[Any, _Deposits]:
    """Deposit rows, first deposits and exact revenue per currency, grouped by ``key``, of
    ``[prefix] SELECT … FROM report_steps WHERE where``."""
    out: dict[Any, _Deposits] = defaultdict(_Deposits)
    try:
        rows = conn.execute(
            f"{prefix} SELECT {key}, currency, count(*), sum(prev_ms IS NULL), {_MONEY}"
            f" FROM {where} GROUP BY {key}, currency",
            args,
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if not _is_overflow(exc):
            raise
        return _deposits_in_python(conn, key, where, args, prefix=prefix)
    for k, currency, n, firsts, integer, fraction, scale in rows:
        d = out[k]
        d.rows += n
        d.firsts += firsts
        if currency is not None and integer is not None:
            d.revenue[currency] = sum_from_parts(integer, fraction, scale, _D)
    return out


def _deposits_in_python(
    conn: sqlite3.Connection, key: str, where: str, args: Sequence[Any], *, prefix: str = ""
) -> dict[Any, _Deposits]:
    """The same, summed with Python integers (which do not overflow)."""
    out: dict[Any, _Deposits] = defaultdict(_Deposits)
    sums: dict[tuple[Any, str], list[int]] = {}
    for k, currency, first, units, fraction, scale in conn.execute(
        f"{prefix} SELECT {key}, currency, prev_ms IS NULL, units, fraction, scale FROM {where}",
        args,
    ):
        d = out[k]
        d.rows += 1
        d.firsts += first
        if currency is not None and units is not None:
            acc = sums.setdefault((k, currency), [0, 0, 0])
            acc[0] += units
            acc[1] += fraction
            acc[2] = max(acc[2], scale)
    for (k, currency), (units, fraction, scale) in sums.items():
        out[k].revenue[currency] = sum_from_parts(units, fraction, scale, _D)
    return out


# ----------------------------------------------------------------------------- funnel


@dataclass(frozen=True)
class _Window:
    """Per link (``NO_LINK`` included): distinct uids per step, and the deposits."""

    uids: dict[int, dict[str, int]]
    deposits: dict[int, _Deposits]


def _per_link(
    conn: sqlite3.Connection, space_id: int, window: Window, link_id: int | None
) -> _Window:
    of_link, link_args = _of_link(space_id, link_id)
    f, t = window.from_ms, window.to_ms
    uids: dict[int, dict[str, int]] = defaultdict(dict)
    for link, event, n in conn.execute(
        f"SELECT link_id, event, count(*) FROM report_steps"
        f" WHERE space_id = ? AND {of_link} AND event IN {_EVENTS_IN}"
        f" AND at_ms >= ? AND at_ms < ? AND (prev_ms IS NULL OR prev_ms < ?)"
        f" GROUP BY link_id, event",
        (space_id, *link_args, f, t, f),
    ):
        uids[link][event] = int(n)
    deposits = _deposits(
        conn,
        "link_id",
        f"report_steps WHERE space_id = ? AND {of_link} AND event = 'deposit'"
        f" AND at_ms >= ? AND at_ms < ?",
        (space_id, *link_args, f, t),
    )
    return _Window(uids, deposits)


def _clicks(conn: sqlite3.Connection, space_id: int, window: Window, link_id: int | None) -> int:
    if link_id is None:
        sql = (
            "SELECT count(*) FROM clicks WHERE space_id = ? AND created_ms >= ? AND created_ms < ?"
        )
        args: tuple[int, ...] = (space_id, window.from_ms, window.to_ms)
    else:
        # link ids are resolved within the space; clicks_link_time alone answers (covering)
        sql = "SELECT count(*) FROM clicks WHERE link_id = ? AND created_ms >= ? AND created_ms < ?"
        args = (link_id, window.from_ms, window.to_ms)
    return int(conn.execute(sql, args).fetchone()[0])


def funnel_counts(
    conn: sqlite3.Connection, space_id: int, window: Window, *, link_id: int | None = None
) -> FunnelCounts:
    """The numbers of one window, for the space or for one link's uids."""
    of_link, link_args = _of_link(space_id, link_id)
    f, t = window.from_ms, window.to_ms
    uids: dict[str, int] = {"click": _clicks(conn, space_id, window, link_id)}
    for event in CANONICAL_EVENTS:  # one plain count each: no GROUP BY, no sort
        uids[event] = conn.execute(
            f"SELECT count(*) FROM report_steps WHERE space_id = ? AND {of_link} AND event = ?"
            f" AND at_ms >= ? AND at_ms < ? AND (prev_ms IS NULL OR prev_ms < ?)",
            (space_id, *link_args, event, f, t, f),
        ).fetchone()[0]
    total = _deposits(
        conn,
        "1",
        f"report_steps WHERE space_id = ? AND {of_link} AND event = 'deposit'"
        f" AND at_ms >= ? AND at_ms < ?",
        (space_id, *link_args, f, t),
    ).get(1, _Deposits())
    unattributed = {
        r[0]: int(r[1])
        for r in conn.execute(
            "SELECT event, count(*) FROM inbox INDEXED BY inbox_report_unattributed"
            " WHERE space_id = ? AND occurred_at_ms >= ? AND occurred_at_ms < ? AND uid IS NULL"
            " GROUP BY event",
            (space_id, window.from_ms, window.to_ms),
        )
    }
    loose = _deposits(
        conn,
        "1",
        f"(SELECT currency, NULL AS prev_ms, {_AMOUNT} FROM inbox"
        f" INDEXED BY inbox_report_unattributed WHERE space_id = ? AND occurred_at_ms >= ?"
        f" AND occurred_at_ms < ? AND uid IS NULL AND event = 'deposit')",
        (space_id, window.from_ms, window.to_ms),
    )
    return FunnelCounts(
        uids=uids,
        deposits=total.rows,
        first_deposits=total.firsts,
        revenue=total.revenue,
        unattributed=unattributed,
        unattributed_revenue=loose[1].revenue if 1 in loose else {},
    )


# ----------------------------------------------------------------------------- per link


def link_rows(conn: sqlite3.Connection, space_id: int, window: Window) -> list[LinkRow]:
    """One row per link of the space (also links without activity), plus a row with
    ``link=None`` for events whose uid has no click on a link (a click minted by the API
    without ``link_slug``, or a uid the tracker never minted), when there are any."""
    links = conn.execute(
        "SELECT id, slug FROM links WHERE space_id = ? ORDER BY slug", (space_id,)
    ).fetchall()
    clicks = {link_id: _clicks(conn, space_id, window, link_id) for link_id, _ in links}
    clicks[NO_LINK] = _clicks(conn, space_id, window, None) - sum(clicks.values())
    per_link = _per_link(conn, space_id, window, None)
    empty = _Deposits()

    def row(link_id: int, slug: str | None) -> LinkRow:
        d = per_link.deposits.get(link_id, empty)
        return LinkRow(slug, clicks.get(link_id, 0), per_link.uids.get(link_id, {}), d.rows,
                       d.revenue)  # fmt: skip

    out = [row(link_id, slug) for link_id, slug in links]
    if clicks[NO_LINK] or NO_LINK in per_link.uids:
        out.append(row(NO_LINK, None))
    return out


def deposit_currencies(conn: sqlite3.Connection, space_id: int, window: Window) -> dict[str, int]:
    """Deposit rows per currency in the window (the default currency of money columns)."""
    return {
        r[0]: int(r[1])
        for r in conn.execute(
            f"SELECT currency, count(*) FROM report_steps WHERE space_id = ? AND {_ALL_LINKS}"
            f" AND event = 'deposit' AND at_ms >= ? AND at_ms < ? AND currency IS NOT NULL"
            f" GROUP BY currency",
            (space_id, space_id, window.from_ms, window.to_ms),
        )
    }


# ----------------------------------------------------------------------------- series


def _buckets_cte(starts: Sequence[int], to_ms: int) -> str:
    """``b(i, lo, hi)``: the buckets as a VALUES table (integers only, formatted by us)."""
    ends = [*starts[1:], to_ms]
    pairs = enumerate(zip(starts, ends, strict=True))
    rows = ", ".join(f"({i}, {int(lo)}, {int(hi)})" for i, (lo, hi) in pairs)
    return f"WITH b(i, lo, hi) AS (VALUES {rows})"


def series_counts(
    conn: sqlite3.Connection,
    space_id: int,
    step: str,
    starts: Sequence[int],
    to_ms: int,
    *,
    link_id: int | None = None,
) -> list[int]:
    """Per bucket ``[starts[i], starts[i+1])`` (the last ends at ``to_ms``): clicks, or distinct
    uids with the event in the bucket."""
    if not starts:
        return []
    cte = _buckets_cte(starts, to_ms)
    if step == "click":
        # By space or by link: each has its (…, created_ms) index.
        column, key = ("space_id", space_id) if link_id is None else ("link_id", link_id)
        sql = (
            f"{cte} SELECT b.i, (SELECT count(*) FROM clicks WHERE {column} = ?"
            f" AND created_ms >= b.lo AND created_ms < b.hi) FROM b ORDER BY b.i"
        )
        args: tuple[Any, ...] = (key,)
    else:
        of_link, link_args = _of_link(space_id, link_id)
        sql = (
            f"{cte} SELECT b.i, count(r.at_ms) FROM b LEFT JOIN report_steps r"
            f" ON r.space_id = ? AND r.{of_link} AND r.event = ? AND r.at_ms >= b.lo"
            f" AND r.at_ms < b.hi AND (r.prev_ms IS NULL OR r.prev_ms < b.lo)"
            f" GROUP BY b.i ORDER BY b.i"
        )
        args = (space_id, *link_args, step)
    counts = dict(conn.execute(sql, args).fetchall())
    return [int(counts.get(i, 0)) for i in range(len(starts))]


def series_revenue(
    conn: sqlite3.Connection,
    space_id: int,
    currency: str,
    starts: Sequence[int],
    to_ms: int,
    *,
    link_id: int | None = None,
) -> list[Decimal]:
    """Revenue in ``currency`` per bucket (attributed deposits; exact)."""
    if not starts:
        return []
    of_link, link_args = _of_link(space_id, link_id)
    per_bucket = _deposits(
        conn,
        "b.i",
        f"b JOIN report_steps r ON r.space_id = ? AND r.{of_link} AND r.event = 'deposit'"
        f" AND r.at_ms >= b.lo AND r.at_ms < b.hi WHERE r.currency = ?",
        (space_id, *link_args, currency),
        prefix=_buckets_cte(starts, to_ms),
    )
    zero = Decimal(0)
    return [
        per_bucket[i].revenue.get(currency, zero) if i in per_bucket else zero
        for i in range(len(starts))
    ]


# ----------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class DestinationHealth:
    id: int
    name: str
    kind: str
    enabled: bool
    health_reason: str | None
    counts: dict[str, int]  # status -> deliveries
    last_success_ms: int | None
    last_error: str | None
    last_error_ms: int | None
    recent_attempts: int  # attempts in the recent window
    recent_failures: int  # of which did not deliver
    median_latency_ms: int | None  # over the recent attempts that got an answer


#: Delivery health looks at attempts this recent, and at most this many per space.
RECENT_MS = 24 * 3_600_000
RECENT_LIMIT = 20_000


def delivery_health(
    conn: sqlite3.Connection, space_id: int, now_ms: int
) -> list[DestinationHealth]:
    dests = conn.execute(
        "SELECT id, name, kind, enabled, health_reason FROM destinations WHERE space_id = ?"
        " ORDER BY id",
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
        counts = {s: 0 for s in ("pending", "retrying", "sent", "failed_permanently")}
        for status, n in conn.execute(
            "SELECT status, count(*) FROM deliveries WHERE destination_id = ? GROUP BY status",
            (d["id"],),
        ):
            counts[status] = int(n)
        last_success = conn.execute(
            "SELECT max(sent_ms) FROM deliveries WHERE destination_id = ? AND status = 'sent'",
            (d["id"],),
        ).fetchone()[0]
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


# ----------------------------------------------------------------------------- live tail


@dataclass(frozen=True)
class Cursor:
    """The last click, inbox row and delivery attempt already seen (global row ids)."""

    click: int = 0
    event: int = 0
    attempt: int = 0

    def text(self) -> str:
        return f"{self.click}-{self.event}-{self.attempt}"

    @classmethod
    def parse(cls, raw: str) -> Cursor | None:
        parts = [whole_number(p) for p in raw.strip().split("-")]
        if len(parts) != 3:
            return None
        click, event, attempt = parts
        if click is None or event is None or attempt is None:
            return None
        return cls(click, event, attempt)


@dataclass(frozen=True)
class TailItem:
    kind: str  # "click", "event" or "delivery"
    at_ms: int
    data: dict[str, Any]
    cursor: Cursor  # resume after this item


@dataclass
class TailBatch:
    items: list[TailItem] = field(default_factory=list)
    cursor: Cursor = field(default_factory=Cursor)


def tail_start(conn: sqlite3.Connection) -> Cursor:
    """The cursor of "now": the newest row ids (the tail shows what comes after)."""
    row = conn.execute(
        "SELECT (SELECT max(id) FROM clicks), (SELECT max(id) FROM inbox),"
        " (SELECT max(id) FROM delivery_attempts)"
    ).fetchone()
    return Cursor(row[0] or 0, row[1] or 0, row[2] or 0)


#: Each poll looks at no more than this many new rows per table (of all spaces), so a busy
#: neighbour cannot make one poll slow; the rest is read at the next poll.
TAIL_SCAN = 5000


def tail(conn: sqlite3.Connection, space_id: int, after: Cursor, limit: int = 500) -> TailBatch:
    """The space's clicks, events and delivery attempts committed after ``after``, oldest
    first, with the cursor to poll from next. One read transaction: one consistent snapshot."""
    conn.execute("BEGIN")
    try:
        top = tail_start(conn)
        clicks, click_to = _tail_rows(
            conn,
            "SELECT k.id, k.created_ms, k.uid, l.slug, k.source, k.country, k.campaign_name,"
            " k.fbclid IS NOT NULL FROM clicks k LEFT JOIN links l ON l.id = k.link_id"
            " WHERE k.id > ? AND k.id <= ? AND k.space_id = ? ORDER BY k.id LIMIT ?",
            after.click,
            top.click,
            space_id,
            limit,
        )
        events, event_to = _tail_rows(
            conn,
            "SELECT id, received_ms, event, uid, tg_id, value, currency, occurred_at_ms, source,"
            " eid FROM inbox WHERE id > ? AND id <= ? AND space_id = ? ORDER BY id LIMIT ?",
            after.event,
            top.event,
            space_id,
            limit,
        )
        attempts, attempt_to = _tail_rows(
            conn,
            "SELECT a.id, a.at_ms, a.delivery_id, d.destination_id, t.name, d.event_name,"
            " a.outcome, a.status_code, a.latency_ms, a.error, d.status"
            " FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " JOIN destinations t ON t.id = d.destination_id"
            " WHERE a.id > ? AND a.id <= ? AND a.space_id = ? ORDER BY a.id LIMIT ?",
            after.attempt,
            top.attempt,
            space_id,
            limit,
        )
    finally:
        conn.execute("COMMIT")
    streams: list[Iterable[tuple[int, int, str, sqlite3.Row]]] = [
        ((r[1], 0, "click", r) for r in clicks),
        ((r[1], 1, "event", r) for r in events),
        ((r[1], 2, "delivery", r) for r in attempts),
    ]
    batch = TailBatch()
    c, e, a = after.click, after.event, after.attempt
    for at_ms, _, kind, r in heapq.merge(*streams, key=lambda t: (t[0], t[1])):
        if kind == "click":
            c = r[0]
            data = {"id": r[0], "uid": r[2], "link": r[3], "source": r[4], "country": r[5],
                    "campaign_name": r[6], "fbclid": bool(r[7]), "created_ms": r[1]}  # fmt: skip
        elif kind == "event":
            e = r[0]
            data = {"id": str(r[0]), "event": r[2], "uid": r[3], "tg_id": r[4], "value": r[5],
                    "currency": r[6], "occurred_at_ms": r[7], "received_ms": r[1],
                    "source": r[8], "eid": r[9], "attributed": r[3] is not None}  # fmt: skip
        else:
            a = r[0]
            data = {"id": r[0], "delivery_id": r[2], "destination_id": r[3], "destination": r[4],
                    "event": r[5], "outcome": r[6], "status_code": r[7], "latency_ms": r[8],
                    "error": r[9], "status": r[10], "at_ms": r[1]}  # fmt: skip
        batch.items.append(TailItem(kind, at_ms, data, Cursor(c, e, a)))
    # Items of one table come in id order; the merge keeps that order, so every item's cursor
    # is exact. Past the last item, skip what this poll looked at and found nothing for.
    batch.cursor = Cursor(
        click_to if len(clicks) < limit else c,
        event_to if len(events) < limit else e,
        attempt_to if len(attempts) < limit else a,
    )
    return batch


def _tail_rows(
    conn: sqlite3.Connection, sql: str, after: int, top: int, space_id: int, limit: int
) -> tuple[list[sqlite3.Row], int]:
    upto = min(top, after + TAIL_SCAN)
    rows = conn.execute(sql, (after, upto, space_id, limit)).fetchall()
    return rows, upto
