"""Activity-mode answers read from the counts per bucket (store/sqlite/rollup_activity.py) rather
than from every event of the window: distinct uids per step, deposits and clicks.
store/sqlite/reports.py asks here first and counts from ``report_steps`` (and the clicks'
index) when there is no answer here (None: no report cube for the clicks, a sum past SQLite's
integers).

A window whose both ends are UTC midnights is read by day; one on the 15-minute grid (every
time zone's hours start on one) of at most ``PAIR_SPAN_MS`` by 15 minutes; a longer one on that
grid as its UTC days and the 15-minute parts either side (``_parts``). Per part: the totals of
its buckets, less the pairs of its buckets whose previous bucket is in the part, one range of
the key (the windows of a series, one after the other, one range together; parts hours apart,
ranges of their own). The uids counted in two parts are the rows of a later part whose previous
event is in an earlier one, read through the indexes of the rows with a previous event (a
uid's step again), not from every event of a part. A window's ends off the 15-minute grid (a
"last 7 days" that ends now), and a window under 15 minutes whole, are counted from their rows
(minutes of them). Deposits and clicks are the sums of the buckets, by UTC day between the
15-minute ends.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from xtracker_server.domain.reports import sum_from_parts
from xtracker_server.store.sqlite.rollup_activity import (
    DAY_MS,
    PAIR_SPAN_MS,
    PAIRS_15M,
    PAIRS_DAY,
    QUARTER_MS,
    SPACE,
    TOTAL_15M,
    TOTAL_DAY,
)
from xtracker_wire import CANONICAL_EVENTS, MAX_VALUE_DECIMALS

__all__ = [
    "EVERY_LINK",
    "RAW",
    "SPACE",
    "Deposits",
    "LinkKeys",
    "currencies",
    "deposits",
    "funnel",
    "levels",
    "one_link",
    "uids",
]

#: Which ``link_id`` keys to read: SQL for ``link_id``'s condition, and its arguments.
LinkKeys = tuple[str, tuple[Any, ...]]
#: Every link of a space and 0 (no link), each apart, in ``report_steps``.
_ALL_LINKS = "link_id IN (SELECT 0 UNION ALL SELECT id FROM links WHERE space_id = ?)"
#: Every link of a space (its id the argument), 0 (no link) and -1 (no click), each apart.
EVERY_LINK = (
    "link_id IN (SELECT -1 UNION ALL SELECT 0 UNION ALL SELECT id FROM links WHERE space_id = ?)"
)


def one_link(link_id: int) -> LinkKeys:
    """One key: a link, ``SPACE`` (every link and no link), or ``UNKNOWN`` (no click)."""
    return "link_id = ?", (link_id,)


@dataclass
class Deposits:
    """Deposit rows, first deposits (the uid's first ever) and exact revenue per currency."""

    rows: int = 0
    firsts: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)


def _day_grid(f: int, t: int) -> bool:
    return f % DAY_MS == 0 and t % DAY_MS == 0


def _pair_kinds(f: int, t: int) -> tuple[int, int, int] | None:
    """(totals' kind, pairs' kind, bucket length) a window's distinct uids are read with."""
    if _day_grid(f, t):
        return TOTAL_DAY, PAIRS_DAY, DAY_MS
    if f % QUARTER_MS == 0 and t % QUARTER_MS == 0 and t - f <= PAIR_SPAN_MS:
        return TOTAL_15M, PAIRS_15M, QUARTER_MS
    return None


def _values(rows: Sequence[tuple[int, ...]]) -> str:
    """A VALUES list of integers (formatted by us)."""
    return ", ".join("(" + ", ".join(str(int(v)) for v in row) + ")" for row in rows)


def _grid(f: int, t: int) -> tuple[int, int] | None:
    """The part of ``[f, t)`` on the 15-minute grid (None: under a whole 15 minutes)."""
    f2, t2 = f + (-f) % QUARTER_MS, t - t % QUARTER_MS
    return (f2, t2) if f2 < t2 else None


def _parts(f: int, t: int) -> list[tuple[int, int]]:
    """A window on the 15-minute grid as windows the counts answer: itself, or (longer than
    ``PAIR_SPAN_MS`` and cut off UTC days) its part before the first UTC midnight, its UTC
    days, and its part after the last."""
    if _pair_kinds(f, t) is not None:
        return [(f, t)]
    d1, d2 = f + (-f) % DAY_MS, t - t % DAY_MS
    return [(a, b) for a, b in ((f, d1), (d1, d2), (d2, t)) if a < b]


def uids(
    conn: sqlite3.Connection,
    space_id: int,
    windows: Sequence[tuple[int, int]],
    links: LinkKeys,
    events: Sequence[str] = CANONICAL_EVENTS,
) -> list[dict[int, dict[str, int]]] | None:
    """Per window ``[f, t)``: per ``link_id`` of ``links``, distinct uids per step of ``events``
    in the window (a window under 15 minutes whole: from its rows).

    A window cut into parts (``_parts``) counts each part's, less the uids counted in two:
    the events of its days or its last part whose previous event is in an earlier part
    (``_across``: read from ``report_steps``, at most a day of events each)."""
    by_kinds: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    cut: list[tuple[int, list[tuple[int, int]]]] = []
    ragged: list[tuple[int, tuple[int, int], tuple[int, int]]] = []
    short: list[tuple[int, tuple[int, int]]] = []
    for i, (f, t) in enumerate(windows):
        grid = _grid(f, t)
        if grid is None:  # under 15 minutes whole: counted from its rows
            short.append((i, (f, t)))
            continue
        if grid != (f, t):
            ragged.append((i, (f, t), grid))
        parts = _parts(*grid)
        for a, b in parts:
            read_as = _pair_kinds(a, b)
            assert read_as is not None  # what _parts cuts
            by_kinds[read_as[:2]].append((i, a, b))
        if len(parts) > 1:
            cut.append((i, parts))
    out: list[dict[int, dict[str, int]]] = [defaultdict(dict) for _ in windows]
    for kinds, chosen in by_kinds.items():
        chosen.sort(key=lambda p: p[1:])
        # a window's rows are one range of the key; windows one after the other (a series)
        # read as one range, but not across a gap (a window's head and tail, days apart: the
        # 15-minute rows of the days between would be read for nothing)
        runs: list[list[tuple[int, int, int]]] = []
        for part in chosen:
            if runs and runs[-1][-1][2] <= part[1] < runs[-1][-1][2] + _GAP_MS:
                runs[-1].append(part)
            else:
                runs.append([part])
        for run in runs:
            _count_run(conn, space_id, run, links, events, kinds, out)
    for i, parts in cut:
        for link, event, n in _across(conn, space_id, parts, links, events):
            counts = out[i][link]
            counts[event] = counts.get(event, 0) - n
    for i, window, grid in ragged:
        for link, event, n in _edges(conn, space_id, window, grid, links, events):
            counts = out[i][link]
            counts[event] = counts.get(event, 0) + n
    for i, (f, t) in short:
        first = "h.at_ms >= ? AND h.at_ms < ? AND (h.prev_ms IS NULL OR h.prev_ms < ?)"
        for link, event, n in _steps(conn, space_id, links, events, first, (f, t, f)):
            counts = out[i][link]
            counts[event] = counts.get(event, 0) + n
    return out


#: Parts of windows further apart than this are read as ranges of their own (``uids``).
_GAP_MS = 2 * 3_600_000


def _across(
    conn: sqlite3.Connection,
    space_id: int,
    parts: list[tuple[int, int]],
    links: LinkKeys,
    events: Sequence[str],
) -> list[tuple[int, str, int]]:
    """Of a window cut into ``parts``: per link and step, the events of a later part whose
    previous event (``prev_ms``) is in an earlier part of the window: read through the indexes
    of the rows with a previous event (a uid's step again), so as many as those, not as many as
    the events of a part."""
    f, t = parts[0][0], parts[-1][1]
    head, last = (parts[0] if f % DAY_MS else None), (parts[-1] if t % DAY_MS else None)
    found = []
    if head is not None:  # the days' events whose previous event is in the head
        days = (head[1], last[0] if last is not None else t)
        found += _again(conn, space_id, links, events, head, days)
    if last is not None:
        found += _steps(conn, space_id, links, events,
                        "h.at_ms >= ? AND h.at_ms < ? AND h.prev_ms >= ? AND h.prev_ms < ?",
                        (*last, f, last[0]), index="report_steps_again")  # fmt: skip
    return found


def _again(
    conn: sqlite3.Connection,
    space_id: int,
    links: LinkKeys,
    events: Sequence[str],
    prev: tuple[int, int],
    at: tuple[int, int],
) -> list[tuple[int, str, int]]:
    """Per link and step: the events in ``at`` whose previous event is in ``prev``."""
    return _steps(conn, space_id, links, events,
                  "h.prev_ms >= ? AND h.prev_ms < ? AND h.at_ms >= ? AND h.at_ms < ?",
                  (*prev, *at), index="report_steps_prev")  # fmt: skip


def _edges(
    conn: sqlite3.Connection,
    space_id: int,
    window: tuple[int, int],
    grid: tuple[int, int],
    links: LinkKeys,
    events: Sequence[str],
) -> list[tuple[int, str, int]]:
    """Of a window off the 15-minute grid (``grid``: the part on it, counted as a window of its
    own): per link and step, the events of its ends off the grid whose previous event is before
    the window, less the grid's events whose previous event is in the window's head."""
    (f, t), (f2, t2) = window, grid
    first = "h.at_ms >= ? AND h.at_ms < ? AND (h.prev_ms IS NULL OR h.prev_ms < ?)"
    found = []
    for lo, hi in ((f, f2), (t2, t)):
        if lo < hi:
            found += _steps(conn, space_id, links, events, first, (lo, hi, f))
    if f < f2:
        taken = _again(conn, space_id, links, events, (f, f2), (f2, t2))
        found += [(link, event, -n) for link, event, n in taken]
    return found


def _rows_of(links: LinkKeys, space_id: int) -> tuple[str, tuple[Any, ...], bool]:
    """``links`` as a condition on ``report_steps`` (which has no ``SPACE`` rows: every link and
    no link), and whether they were ``SPACE``."""
    if links[1] == (SPACE,):
        return _ALL_LINKS, (space_id,), True
    return *links, False


def _steps(
    conn: sqlite3.Connection,
    space_id: int,
    links: LinkKeys,
    events: Sequence[str],
    where: str,
    args: tuple[Any, ...],
    *,
    index: str | None = None,
) -> list[tuple[int, str, int]]:
    """Per link and step: the rows ``h`` of ``report_steps`` of ``links`` that match ``where``
    (a few minutes of them: the ends of a window; or, through ``index``, rows with a previous
    event)."""
    link_sql, link_args, space = _rows_of(links, space_id)
    marks = ", ".join("?" * len(events))
    indexed = f" INDEXED BY {index}" if index else ""
    return [
        (SPACE if space else link, event, int(n))
        for link, event, n in conn.execute(
            f"SELECT h.link_id, h.event, count(*) FROM report_steps h{indexed} WHERE h.space_id = ?"
            f" AND h.{link_sql} AND h.event IN ({marks}) AND {where} GROUP BY h.link_id, h.event",
            (space_id, *link_args, *events, *args),
        )
    ]


def _count_run(
    conn: sqlite3.Connection,
    space_id: int,
    run: list[tuple[int, int, int]],
    links: LinkKeys,
    events: Sequence[str],
    kinds: tuple[int, int],
    out: list[dict[int, dict[str, int]]],
) -> None:
    """Windows ``(i, f, t)`` in order, none overlapping: their buckets' totals, less the pairs
    whose previous bucket is in the same window, added to ``out[i]``."""
    starts = [f for _, f, _ in run]
    link_sql, link_args = links
    marks = ", ".join("?" * len(events))
    lo, hi = run[0][1], run[-1][2]
    for kind, sign in zip(kinds, (1, -1), strict=True):
        # pairs: only those whose previous bucket is in the span (per bucket, a bounded few)
        for link, event, bucket, prev, n in conn.execute(
            "SELECT link_id, event, bucket, prev_bucket, n FROM report_activity"
            f" WHERE space_id = ? AND {link_sql} AND event IN ({marks}) AND kind = ?"
            " AND bucket >= ? AND bucket < ? AND prev_bucket >= ?",
            (space_id, *link_args, *events, kind, lo, hi, 0 if sign > 0 else lo),
        ):
            i, f, t = run[bisect_right(starts, bucket) - 1]
            if bucket >= t or (sign < 0 and prev < f):
                continue  # between two windows, or the previous event before its window
            counts = out[i][link]
            counts[event] = counts.get(event, 0) + sign * n


def deposits(
    conn: sqlite3.Connection,
    space_id: int,
    windows: Sequence[tuple[int, int]],
    links: LinkKeys,
    *,
    currency: str | None = None,
) -> list[dict[int, tuple[Deposits, Deposits]]] | None:
    """Per window: per ``link_id``, the deposits and, of them, the reversed ones (only in
    ``currency`` if given). None if a sum went past SQLite's 64-bit integers (summed from
    ``report_steps`` then)."""
    by_kind: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for i, (f, t) in enumerate(windows):
        for kind, lo, hi in levels(f, t):
            by_kind[kind].append((i, lo, hi))
    link_sql, link_args = links
    of_currency, currency_args = ("", ()) if currency is None else (" AND m.currency = ?",
                                                                    (currency,))  # fmt: skip
    # per window, link, currency and scale: the sums (in Python: they never overflow)
    sums: dict[tuple[int, int, str, int], list[int]] = {}
    for i, lo, hi in by_kind.pop(RAW, []):
        found = _raw_deposits(conn, space_id, (lo, hi), links, currency)
        if found is None:
            return None
        for link, cur, scale, *parts in found:
            acc = sums.setdefault((i, link, cur, scale), [0] * 7)
            for j, v in enumerate(parts):
                acc[j] += v
    for kind, windows_of in by_kind.items():
        for i, link, cur, scale, *parts in conn.execute(
            f"WITH w(i, lo, hi) AS (VALUES {_values(windows_of)})"
            " SELECT w.i, m.link_id, m.currency, m.scale, m.n, m.firsts, m.units, m.fraction,"
            " m.rn, m.r_units, m.r_fraction FROM w JOIN report_activity_money m"
            f" ON m.space_id = ? AND m.{link_sql} AND m.kind = ? AND m.bucket >= w.lo"
            f" AND m.bucket < w.hi{of_currency}",
            (space_id, *link_args, kind, *currency_args),
        ):
            if any(type(v) is not int for v in parts):
                # a sum past SQLite's 64-bit integers turned REAL (inexact): the rows are
                # summed from report_steps instead (store/sqlite/reports.py)
                return None
            acc = sums.setdefault((i, link, cur, scale), [0] * 7)
            for j, v in enumerate(parts):
                acc[j] += v
    out: list[dict[int, tuple[Deposits, Deposits]]] = [{} for _ in windows]
    money: dict[tuple[int, int, str, bool], list[int]] = {}
    for (i, link, cur, scale), (
        n,
        firsts,
        units,
        fraction,
        rn,
        r_units,
        r_fraction,
    ) in sums.items():
        gross, reversed_ = out[i].setdefault(link, (Deposits(), Deposits()))
        gross.rows, gross.firsts, reversed_.rows = (
            gross.rows + n,
            gross.firsts + firsts,
            reversed_.rows + rn,
        )
        if not cur or scale < 0:
            continue
        for is_reversed, count, u, fr in (
            (False, n, units, fraction),
            (True, rn, r_units, r_fraction),
        ):
            if count:
                acc = money.setdefault((i, link, cur, is_reversed), [0, 0, 0])
                acc[0], acc[1], acc[2] = acc[0] + u, acc[1] + fr, max(acc[2], scale)
    for (i, link, cur, is_reversed), (u, fr, scale) in money.items():
        out[i][link][int(is_reversed)].revenue[cur] = sum_from_parts(
            u, fr, scale, MAX_VALUE_DECIMALS
        )
    return out


def funnel(
    conn: sqlite3.Connection, space_id: int, window: tuple[int, int], links: LinkKeys
) -> dict[int, tuple[dict[str, int], Deposits, Deposits]] | None:
    """Per ``link_id``: distinct uids per step in the window (the steps with any), its deposits
    and of them the reversed ones; None if the window is not on a grid the counts are kept on."""
    counts = uids(conn, space_id, [window], links)
    money = deposits(conn, space_id, [window], links)
    if counts is None or money is None:
        return None
    out = {}
    for link in counts[0].keys() | money[0].keys():
        gross, reversed_ = money[0].get(link, (Deposits(), Deposits()))
        steps = counts[0].get(link, {})
        out[link] = ({e: n for e, n in steps.items() if n}, gross, reversed_)
    return out


def _raw_deposits(
    conn: sqlite3.Connection,
    space_id: int,
    part: tuple[int, int],
    links: LinkKeys,
    currency: str | None,
) -> list[tuple[Any, ...]] | None:
    """``report_activity_money``'s sums of the deposit rows of ``part`` (a few minutes), per
    link, currency and scale; None if a sum overflows (summed from the rows then)."""
    link_sql, link_args, space = _rows_of(links, space_id)
    of_currency, currency_args = ("", ()) if currency is None else (" AND h.currency = ?",
                                                                    (currency,))  # fmt: skip
    try:
        rows = conn.execute(
            "SELECT link_id, cur, sc, count(*), sum(prev_ms IS NULL), sum(u), sum(fr), sum(r),"
            " sum(r * u), sum(r * fr) FROM (SELECT h.link_id, coalesce(h.currency, '') AS cur,"
            " coalesce(h.scale, -1) AS sc, h.prev_ms, coalesce(h.units, 0) AS u,"
            " coalesce(h.fraction, 0) AS fr, EXISTS (SELECT 1 FROM report_reversed v"
            "  WHERE v.space_id = h.space_id AND v.deposit_id = h.inbox_id) AS r"
            f" FROM report_steps h WHERE h.space_id = ? AND h.{link_sql} AND h.event = 'deposit'"
            f" AND h.at_ms >= ? AND h.at_ms < ?{of_currency}) GROUP BY link_id, cur, sc",
            (space_id, *link_args, *part, *currency_args),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "overflow" not in str(exc).lower():
            raise
        return None
    return [(SPACE if space else row[0], *row[1:]) for row in rows]


def currencies(
    conn: sqlite3.Connection, space_id: int, window: tuple[int, int], keys: Sequence[int]
) -> dict[str, int] | None:
    """Deposit rows per currency in the window, of the ``link_id`` keys given: ``SPACE`` and
    ``UNKNOWN``, every deposit with a uid (its ends off the grid are read for those)."""
    marks = ", ".join("?" * len(keys))
    out: dict[str, int] = defaultdict(int)
    for kind, lo, hi in levels(*window):
        if kind == RAW:
            for currency, n in conn.execute(
                f"SELECT currency, count(*) FROM report_steps WHERE space_id = ? AND {EVERY_LINK}"
                " AND event = 'deposit' AND at_ms >= ? AND at_ms < ? AND currency IS NOT NULL"
                " GROUP BY currency",
                (space_id, space_id, lo, hi),
            ):
                out[currency] += n
            continue
        for currency, n in conn.execute(
            "SELECT currency, sum(n) FROM report_activity_money WHERE space_id = ?"
            f" AND link_id IN ({marks}) AND kind = ? AND bucket >= ? AND bucket < ?"
            " AND currency != '' GROUP BY currency",
            (space_id, *keys, kind, lo, hi),
        ):
            out[currency] += n
    return {currency: n for currency, n in sorted(out.items()) if n}


#: ``levels``' kind of a window's ends off the 15-minute grid: read from the rows themselves.
RAW = -1


def levels(f: int, t: int) -> list[tuple[int, int, int]]:
    """``[f, t)`` as (kind, from, to): UTC days, 15 minutes at their ends, and the window's
    ends off the 15-minute grid (``RAW``: a few minutes; a window under 15 minutes whole is
    all of it)."""
    grid = _grid(f, t)
    if grid is None:
        return [(RAW, f, t)] if f < t else []
    (f2, t2), parts = grid, []
    d1, d2 = f2 + (-f2) % DAY_MS, t2 - t2 % DAY_MS
    if d1 >= d2:
        parts = [(TOTAL_15M, f2, t2)]
    else:
        parts = [(TOTAL_15M, f2, d1), (TOTAL_DAY, d1, d2), (TOTAL_15M, d2, t2)]
    parts += [(RAW, f, f2), (RAW, t2, t)]
    return [(kind, a, b) for kind, a, b in parts if a < b]
