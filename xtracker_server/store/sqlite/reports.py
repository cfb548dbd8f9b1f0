"""The queries behind the reports (docs/reports.md). Read-only; every one is scoped by space.

In activity mode, the funnel, the per-link table and the series ask the counts per bucket first
(store/sqlite/reports_activity.py: a bounded number of rows, whatever the history); a window
under 15 minutes whole, and the cohort, read ``report_steps`` (the rollup of
``store/sqlite/rollup.py``, in the attached ``reports`` file; callers bring it up to date first):
one row per attributed event, keyed (space, link, step, time) and carrying the time of
the uid's previous event of the same step (``prev_ms``). So:

- distinct uids with a step in ``[from, to)`` = rows in the window with ``prev_ms`` NULL or
  before ``from`` (each uid's first event of the step inside the window);
- first deposits = deposit rows in the window with ``prev_ms`` NULL (the uid's first ever);
- a uid belongs to one link (its click's), so per-link numbers add up to the space's; the
  per-link table is one pass in key order (no sort), the funnel one count per step.

Reversed revenue is the part of those deposits that was taken back: deposit rows whose inbox id
is in ``report_reversed`` (the rollup pairs a ``deposit.reversed`` with its deposit), counted in
the deposit's window, link and currency, so gross - reversed = net holds in every report.

Money is summed exactly in SQL: an amount is fixed-point text with at most
``MAX_VALUE_DECIMALS`` (8) decimals, so the rollup stores it as two exact integers, its integer
part (``units``) and its fraction as 8 digits (``fraction``), plus how many decimals it was
given (``scale``); their sums are exact too, and ``domain.reports.sum_from_parts`` puts the
total back together as a ``Decimal``. SQLite raises on integer overflow rather than rounding
(over 9 million deposits of the largest accepted amount); then the same rows are summed with
Python integers instead.
"""

from __future__ import annotations

import importlib
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from xtracker_server.domain.reports import (
    RECENT_MS,
    FunnelCounts,
    FunnelMode,
    LinkRow,
    Window,
    sum_from_parts,
)
from xtracker_server.store.sqlite import reports_activity as counted
from xtracker_server.store.sqlite import reports_clicks as counted_clicks
from xtracker_server.store.sqlite.reports_activity import Deposits as _Deposits
from xtracker_server.store.sqlite.reports_loose import counts as loose_counts
from xtracker_server.store.sqlite.rollup_activity import STEPS_IN
from xtracker_server.store.sqlite.rollup_schema import UNKNOWN
from xtracker_server.store.sqlite.unrecorded import unrecorded_per_link
from xtracker_wire import CANONICAL_EVENTS, MAX_VALUE_DECIMALS

__all__ = [
    "NO_LINK",
    "RECENT_MS",
    "deposit_currencies",
    "funnel_counts",
    "link_rows",
    "series_counts",
    "series_revenue",
]

#: Delivery health moved to store/sqlite/delivery_health.py; still importable from here (older
#: imports, the tests), imported when first read: the funnel does not load the delivery records.
_MOVED = frozenset({"RECENT_LIMIT", "DestinationHealth", "delivery_health"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("xtracker_server.store.sqlite.delivery_health"), name)


_D = MAX_VALUE_DECIMALS
#: Every link of a space, and 0 (no link): lets SQLite seek each link's range of the key. The
#: funnel's steps; not ``UNKNOWN`` (a uid without a click), counted on a line of its own.
_ALL_LINKS = "link_id IN (SELECT 0 UNION ALL SELECT id FROM links WHERE space_id = ?)"
#: The same and ``UNKNOWN``: the per-link table counts those in "no link".
_ALL_ROWS = (
    "link_id IN (SELECT -1 UNION ALL SELECT 0 UNION ALL SELECT id FROM links WHERE space_id = ?)"
)
#: No link: ``report_steps.link_id`` of events whose uid has no click on a link.
NO_LINK = 0


def _of_link(
    space_id: int, link_id: int | None, *, unknown: bool = True
) -> tuple[str, tuple[int, ...]]:
    """The ``link_id`` condition and its arguments: one link, or all of the space's (with the
    uids without a click, ``unknown``, or not)."""
    if link_id is not None:
        return "link_id = ?", (link_id,)
    return (_ALL_ROWS if unknown else _ALL_LINKS), (space_id,)


_MONEY = "sum(units), sum(fraction), max(scale)"


def _is_overflow(exc: sqlite3.Error) -> bool:
    return "overflow" in str(exc).lower()


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


#: Of the deposit rows a query selects, those that were reversed.
_REVERSED = " AND inbox_id IN (SELECT deposit_id FROM report_reversed WHERE space_id = ?)"


@dataclass(frozen=True)
class _Window:
    """Per link (``NO_LINK`` included): distinct uids per step, the deposits, and of them the
    reversed ones."""

    uids: dict[int, dict[str, int]]
    deposits: dict[int, _Deposits]
    reversed: dict[int, _Deposits]


def _per_link(
    conn: sqlite3.Connection, space_id: int, window: Window, link_id: int | None
) -> _Window:
    of_link, link_args = _of_link(space_id, link_id)
    f, t = window.from_ms, window.to_ms
    uids: dict[int, dict[str, int]] = defaultdict(dict)
    links = counted.one_link(link_id) if link_id is not None else (counted.EVERY_LINK, (space_id,))
    found = counted.funnel(conn, space_id, (f, t), links)
    if found is not None:  # from the counts per bucket
        deposits: dict[int, _Deposits] = defaultdict(_Deposits)
        reversed_: dict[int, _Deposits] = defaultdict(_Deposits)
        for link, (steps, deposits[link], reversed_[link]) in found.items():
            key = NO_LINK if link == UNKNOWN else link
            for event, n in steps.items():
                uids[key][event] = uids[key].get(event, 0) + n
        return _Window(uids, _fold_unknown(deposits), _fold_unknown(reversed_))
    for link, event, n in conn.execute(
        f"SELECT link_id, event, count(*) FROM report_steps"
        f" WHERE space_id = ? AND {of_link} AND event IN {STEPS_IN}"
        f" AND at_ms >= ? AND at_ms < ? AND (prev_ms IS NULL OR prev_ms < ?)"
        f" GROUP BY link_id, event",
        (space_id, *link_args, f, t, f),
    ):
        # a uid has one link_id: "no link" and "no click" add up to distinct uids
        key = NO_LINK if link == UNKNOWN else link
        uids[key][event] = uids[key].get(event, 0) + int(n)
    where = (
        f"report_steps WHERE space_id = ? AND {of_link} AND event = 'deposit'"
        f" AND at_ms >= ? AND at_ms < ?"
    )
    args = (space_id, *link_args, f, t)
    deposits = _fold_unknown(_deposits(conn, "link_id", where, args))
    reversed_ = _fold_unknown(_deposits(conn, "link_id", where + _REVERSED, (*args, space_id)))
    return _Window(uids, deposits, reversed_)


def _fold_unknown(deposits: dict[Any, _Deposits]) -> dict[Any, _Deposits]:
    """The deposits of uids without a click (``UNKNOWN``) added to those of ``NO_LINK``."""
    unknown = deposits.pop(UNKNOWN, None)
    if unknown is not None:
        d = deposits[NO_LINK]
        d.rows, d.firsts = d.rows + unknown.rows, d.firsts + unknown.firsts
        for currency, amount in unknown.revenue.items():
            d.revenue[currency] = d.revenue.get(currency, Decimal(0)) + amount
    return deposits


def _clicks(conn: sqlite3.Connection, space_id: int, window: Window, link_id: int | None) -> int:
    return counted_clicks.clicks(conn, space_id, (window.from_ms, window.to_ms), link_id)


def funnel_counts(
    conn: sqlite3.Connection,
    space_id: int,
    window: Window,
    *,
    link_id: int | None = None,
    mode: FunnelMode = FunnelMode.ACTIVITY,
    cube: bool | None = False,
) -> FunnelCounts:
    """The numbers of one window, for the space or for one link's uids, in ``mode``. Events
    whose uid has no click in the space (``UNKNOWN``) are in no step: they are counted apart
    (``unknown``, the space's, by the events' time in both modes), as are events without a uid
    (``unattributed``). ``cube`` (XTRACKER_REPORT_CUBE; None: whenever the rollup has it): a
    cohort's steps and money are read from the report cube when the rollup was built with it,
    a bounded number of rows instead of every uid of the window's clicks."""
    if mode is FunnelMode.COHORT:
        found = _cohort_from_cube(conn, space_id, window, link_id) if cube is not False else None
        uids, total, reversed_ = found or _cohort(conn, space_id, window, link_id)
    else:
        uids, total, reversed_ = _activity(conn, space_id, window, link_id)
    f, t = window.from_ms, window.to_ms
    without_click = counted.funnel(conn, space_id, (f, t), counted.one_link(UNKNOWN))
    if without_click is not None:  # from the counts per bucket
        unknown, loose_known, _ = without_click.get(UNKNOWN, ({}, _Deposits(), None))
    else:
        unknown, loose_known = _unknown(conn, space_id, window)
    unattributed, unattributed_revenue = loose_counts(conn, space_id, (f, t))
    return FunnelCounts(
        uids=uids,
        deposits=total.rows,
        first_deposits=total.firsts,
        revenue=total.revenue,
        unattributed=unattributed,
        unattributed_revenue=unattributed_revenue,
        reversed_deposits=reversed_.rows,
        reversed_revenue=reversed_.revenue,
        unknown=unknown,
        unknown_deposits=loose_known.rows,
        unknown_revenue=loose_known.revenue,
    )


def _unknown(
    conn: sqlite3.Connection, space_id: int, window: Window
) -> tuple[dict[str, int], _Deposits]:
    """The uids without a click per step in the window, and their deposits."""
    f, t = window.from_ms, window.to_ms
    unknown = {
        event: int(n)
        for event, n in conn.execute(
            "SELECT event, count(*) FROM report_steps WHERE space_id = ? AND link_id = ?"
            f" AND event IN {STEPS_IN} AND at_ms >= ? AND at_ms < ?"
            " AND (prev_ms IS NULL OR prev_ms < ?) GROUP BY event",
            (space_id, UNKNOWN, f, t, f),
        )
    }
    where = (
        "report_steps WHERE space_id = ? AND link_id = ? AND event = 'deposit'"
        " AND at_ms >= ? AND at_ms < ?"
    )
    return unknown, _deposits(conn, "1", where, (space_id, UNKNOWN, f, t)).get(1, _Deposits())


def _activity(
    conn: sqlite3.Connection, space_id: int, window: Window, link_id: int | None
) -> tuple[dict[str, int], _Deposits, _Deposits]:
    """Clicks in the window, distinct uids with each step in the window, their deposits, and of
    those the reversed ones."""
    of_link, link_args = _of_link(space_id, link_id, unknown=False)
    f, t = window.from_ms, window.to_ms
    uids: dict[str, int] = {"click": _clicks(conn, space_id, window, link_id)}
    key = counted.SPACE if link_id is None else link_id
    found = counted.funnel(conn, space_id, (f, t), counted.one_link(key))
    if found is not None:  # from the counts per bucket
        steps, total, reversed_ = found.get(key, ({}, _Deposits(), _Deposits()))
        return uids | {e: steps.get(e, 0) for e in CANONICAL_EVENTS}, total, reversed_
    for event in CANONICAL_EVENTS:  # one plain count each: no GROUP BY, no sort
        uids[event] = conn.execute(
            f"SELECT count(*) FROM report_steps WHERE space_id = ? AND {of_link} AND event = ?"
            f" AND at_ms >= ? AND at_ms < ? AND (prev_ms IS NULL OR prev_ms < ?)",
            (space_id, *link_args, event, f, t, f),
        ).fetchone()[0]
    where = (
        f"report_steps WHERE space_id = ? AND {of_link} AND event = 'deposit'"
        f" AND at_ms >= ? AND at_ms < ?"
    )
    args = (space_id, *link_args, f, t)
    total = _deposits(conn, "1", where, args).get(1, _Deposits())
    reversed_ = _deposits(conn, "1", where + _REVERSED, (*args, space_id)).get(1, _Deposits())
    return uids, total, reversed_


def _cohort_from_cube(
    conn: sqlite3.Connection, space_id: int, window: Window, link_id: int | None
) -> tuple[dict[str, int], _Deposits, _Deposits] | None:
    """``_cohort``'s answer from the report cube (store/sqlite/cube.py), or None without one."""
    from xtracker_server.store.sqlite.cube import cohort_funnel  # it imports this module

    slug = None
    if link_id is not None:
        row = conn.execute(
            "SELECT slug FROM links WHERE id = ? AND space_id = ?", (link_id, space_id)
        ).fetchone()
        if row is None:
            return None
        slug = str(row[0])
    g = cohort_funnel(conn, space_id, window, slug)
    if g is None:
        return None
    uids = {"click": g.clicks, **{e: g.uids.get(e, 0) for e in CANONICAL_EVENTS}}
    total = _Deposits(g.deposits, g.first_deposits, g.revenue_total())
    reversed_revenue = {c: sum(days.values(), Decimal(0)) for c, days in g.reversed_revenue.items()}
    reversed_ = _Deposits(g.reversed_deposits, 0, reversed_revenue)
    return uids, total, reversed_


def _cohort(
    conn: sqlite3.Connection, space_id: int, window: Window, link_id: int | None
) -> tuple[dict[str, int], _Deposits, _Deposits]:
    """Clicks in the window, and of their uids those with each step at any time (a uid's first
    event of a step is its row with ``prev_ms`` NULL: one per uid), their deposits ever, and of
    those the reversed ones. Reads the window's clicks and each one's rows
    (``report_steps_uid``)."""
    if link_id is None:
        clicks = "SELECT uid FROM clicks WHERE space_id = ? AND created_ms >= ? AND created_ms < ?"
        args: tuple[int, ...] = (space_id, window.from_ms, window.to_ms)
    else:
        clicks = "SELECT uid FROM clicks WHERE link_id = ? AND created_ms >= ? AND created_ms < ?"
        args = (link_id, window.from_ms, window.to_ms)
    cohort = f"WITH cohort(uid) AS ({clicks})"
    rows = (
        "cohort c JOIN report_steps r INDEXED BY report_steps_uid"
        " ON r.space_id = ? AND r.uid = c.uid"
    )
    uids: dict[str, int] = {"click": _clicks(conn, space_id, window, link_id)}
    uids.update({event: 0 for event in CANONICAL_EVENTS})
    for event, n in conn.execute(
        f"{cohort} SELECT r.event, count(*) FROM {rows}"
        f" WHERE r.event IN {STEPS_IN} AND r.prev_ms IS NULL GROUP BY r.event",
        (*args, space_id),
    ):
        uids[event] = int(n)

    def deposits(extra: str, extra_args: tuple[int, ...]) -> _Deposits:
        return _deposits(
            conn,
            "1",
            f"(SELECT r.currency, r.prev_ms, r.units, r.fraction, r.scale FROM {rows}"
            f" WHERE r.event = 'deposit'{extra})",
            (*args, space_id, *extra_args),
            prefix=cohort,
        ).get(1, _Deposits())

    total = deposits("", ())
    reversed_ = deposits(
        " AND r.inbox_id IN (SELECT deposit_id FROM report_reversed WHERE space_id = ?)",
        (space_id,),
    )
    return uids, total, reversed_


# ----------------------------------------------------------------------------- per link


def link_rows(conn: sqlite3.Connection, space_id: int, window: Window) -> list[LinkRow]:
    """One row per link of the space (also links without activity), plus a row with
    ``link=None`` for events whose uid has no click on a link (a click minted by the API
    without ``link_slug``, or a uid the tracker never minted), when there are any. Landing
    visits not recorded as clicks count in the hours that start in the window."""
    links = conn.execute(
        "SELECT id, slug FROM links WHERE space_id = ? ORDER BY slug", (space_id,)
    ).fetchall()
    found = counted_clicks.link_clicks(conn, space_id, [(window.from_ms, window.to_ms)],
                                       (counted.EVERY_LINK, (space_id,)))  # fmt: skip
    clicks = {link_id: found[0].get(link_id, 0) if found is not None
              else _clicks(conn, space_id, window, link_id) for link_id, _ in links}  # fmt: skip
    clicks[NO_LINK] = _clicks(conn, space_id, window, None) - sum(clicks.values())
    per_link = _per_link(conn, space_id, window, None)
    unrecorded = unrecorded_per_link(conn, space_id, window.from_ms, window.to_ms)
    empty = _Deposits()

    def row(link_id: int, slug: str | None) -> LinkRow:
        d = per_link.deposits.get(link_id, empty)
        r = per_link.reversed.get(link_id, empty)
        return LinkRow(slug, clicks.get(link_id, 0), per_link.uids.get(link_id, {}), d.rows,
                       d.revenue, unrecorded.get(link_id, {}), r.rows, r.revenue)  # fmt: skip

    out = [row(link_id, slug) for link_id, slug in links]
    if clicks[NO_LINK] or NO_LINK in per_link.uids:
        out.append(row(NO_LINK, None))
    return out


def deposit_currencies(conn: sqlite3.Connection, space_id: int, window: Window) -> dict[str, int]:
    """Deposit rows per currency in the window (the default currency of money columns)."""
    f, t = window.from_ms, window.to_ms
    rows = counted.currencies(conn, space_id, (f, t), (counted.SPACE, UNKNOWN))
    if rows is not None:  # from the counts per bucket
        return rows
    return {
        r[0]: int(r[1])
        for r in conn.execute(
            f"SELECT currency, count(*) FROM report_steps WHERE space_id = ? AND {_ALL_ROWS}"
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
    uids with the event in the bucket; like the funnel's steps, not the uids without a click."""
    if not starts:
        return []
    cte = _buckets_cte(starts, to_ms)
    if step == "click":
        windows = list(zip(starts, [*starts[1:], to_ms], strict=True))
        key = counted.SPACE if link_id is None else link_id
        clicks = counted_clicks.link_clicks(conn, space_id, windows, counted.one_link(key))
        if clicks is not None:  # counted per bucket
            return [c.get(key, 0) for c in clicks]
        # By space or by link: each has its (…, created_ms) index.
        column, key = ("space_id", space_id) if link_id is None else ("link_id", link_id)
        sql = (
            f"{cte} SELECT b.i, (SELECT count(*) FROM clicks WHERE {column} = ?"
            f" AND created_ms >= b.lo AND created_ms < b.hi) FROM b ORDER BY b.i"
        )
        args: tuple[Any, ...] = (key,)
    else:
        key = counted.SPACE if link_id is None else link_id
        windows = list(zip(starts, [*starts[1:], to_ms], strict=True))
        found = counted.uids(conn, space_id, windows, counted.one_link(key), (step,))
        if found is not None:  # from the counts per bucket
            return [w.get(key, {}).get(step, 0) for w in found]
        of_link, link_args = _of_link(space_id, link_id, unknown=False)
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
    reversed_only: bool = False,
) -> list[Decimal]:
    """Revenue in ``currency`` per bucket (attributed deposits; exact); ``reversed_only``: of
    the deposits of each bucket, those that were reversed."""
    if not starts:
        return []
    key = counted.SPACE if link_id is None else link_id
    windows = list(zip(starts, [*starts[1:], to_ms], strict=True))
    found = counted.deposits(conn, space_id, windows, counted.one_link(key), currency=currency)
    zero = Decimal(0)
    if found is not None:  # from the counts per bucket
        part = int(reversed_only)
        return [w[key][part].revenue.get(currency, zero) if key in w else zero for w in found]
    of_link, link_args = _of_link(space_id, link_id, unknown=False)
    reversed_sql, reversed_args = (
        (" AND r.inbox_id IN (SELECT deposit_id FROM report_reversed WHERE space_id = ?)",
         (space_id,)) if reversed_only else ("", ())
    )  # fmt: skip
    per_bucket = _deposits(
        conn,
        "b.i",
        f"b JOIN report_steps r ON r.space_id = ? AND r.{of_link} AND r.event = 'deposit'"
        f" AND r.at_ms >= b.lo AND r.at_ms < b.hi WHERE r.currency = ?{reversed_sql}",
        (space_id, *link_args, currency, *reversed_args),
        prefix=_buckets_cte(starts, to_ms),
    )
    return [
        per_bucket[i].revenue.get(currency, zero) if i in per_bucket else zero
        for i in range(len(starts))
    ]
