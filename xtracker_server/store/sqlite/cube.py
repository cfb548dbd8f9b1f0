"""Grouped reports from the report cube (store/sqlite/cube_schema.py): a bounded number of
pre-aggregated rows per report, however many events the window holds (issue 17 §6).

``cube_counts`` answers a cohort ``GroupQuery`` whose window starts and ends on a 15-minute
boundary, grouped and filtered by:

- link or campaign (or both), from the C rows (hundreds of keys, not thousands of ads); or
- any of link, campaign, ad set, ad (at most two of them nested), from the H rows; or
- ONE other dimension (campaign_name, placement, utm_*, country, device, os, browser,
  referrer, a declared ``sub.NAME``) alone, from its value rows; clicks without a value of
  it are the whole space's rows less its value rows; or
- ONE other dimension with link and campaign beside it, from that dimension's rows (per UTC
  day); clicks without a value of it are the C rows less its rows;
- and the day or the hour in the query's time zone.

Anything else (activity mode, another combination, a window off the 15-minute grid) answers
None: the caller counts from the events instead. ``group_counts`` is the store's operation:
the cube where it is on (XTRACKER_REPORT_CUBE, and the rollup built with it) and holds the
answer, store/sqlite/groups.py otherwise.

The window is read as whole UTC days between edges in UTC hours and 15-minute buckets
(cube_segments.py; a dimension's rows with link and campaign: whole UTC days only); by day,
each local day so; by hour, in hours where each is a local hour, else 15-minute buckets.
Cohort revenue is dated by the click's day in the query's time zone: the money is read by
local days, so it is exact in every time zone.
"""

from __future__ import annotations

import gc
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Any

from xtracker_server.domain.filters import SUB_ID_PREFIX, Filter, Filters
from xtracker_server.domain.groups import (
    NAME_OF,
    TIME_DIMENSIONS,
    TTC_BOUNDS_S,
    GroupCounts,
    GroupQuery,
)
from xtracker_server.domain.reports import (
    DAY_MS,
    Bucket,
    FunnelMode,
    Window,
    bucket_starts,
    zone,
)
from xtracker_server.store.sqlite import cube_probe, cube_ttc, groups
from xtracker_server.store.sqlite.cube_edges import add, whole_days
from xtracker_server.store.sqlite.cube_feed import D_DIMENSIONS, H_DIMENSIONS
from xtracker_server.store.sqlite.cube_money import MONEY, Amounts, MoneyRows
from xtracker_server.store.sqlite.cube_schema import (
    ALL,
    COUNTS,
    LEVEL_15M,
    LEVEL_MS,
    VALUE_ROWS,
    C,
    H,
    by_value,
    ready,
)
from xtracker_server.store.sqlite.cube_segments import Labels, Segment, Weights, segments
from xtracker_server.store.sqlite.rollup_marks import CLICKS, mark
from xtracker_wire import CANONICAL_EVENTS

__all__ = ["cube_counts", "group_counts"]

_Q = LEVEL_MS[LEVEL_15M]
_BINS = len(TTC_BOUNDS_S) + 1


class _Group:
    """What a group's rows add up to: ``counts`` (``COUNTS``), ``ttc`` (the rows' cells and
    signs: cube_ttc.Histograms), ``money`` (its cube_money rows: cube_money.MoneyRows; None:
    none)."""

    __slots__ = ("counts", "money", "names", "ttc")

    def __init__(self, counts: list[int]) -> None:
        self.counts = counts
        self.names: dict[str, str] = {}  # NAME_OF[dimension] -> the name beside its id
        self.ttc: list[tuple[bytes, int]] = []
        self.money: MoneyRows | None = None


_N = len(COUNTS)
_DEPOSIT = COUNTS.index("deposit")
_DEPOSITS, _REVERSED = COUNTS.index("deposits"), COUNTS.index("reversed")
_STEPS = tuple((COUNTS.index(event), event) for event in CANONICAL_EVENTS)


#: The dimensions of the C rows' keys.
_C_DIMENSIONS = frozenset({"link", "campaign"})


def _dimension(query: GroupQuery) -> str | None:
    """The rows that answer ``query``: the C rows (link and campaign alone), the H rows (ad
    sets or ads too; none: the whole space's, ``_Reader``), a dimension's value rows (that
    dimension alone), its rows with link and campaign, or None (not pre-aggregated)."""
    named = {d for d in query.by if d not in TIME_DIMENSIONS}
    named |= {f.dimension for f in query.filters.items}
    if named and named <= _C_DIMENSIONS:
        return C
    if named <= set(H_DIMENSIONS):
        return H
    rest = named - {"link", "campaign"}
    if len(rest) != 1:
        return None
    (dim,) = rest
    if dim not in D_DIMENSIONS and not dim.startswith(SUB_ID_PREFIX):
        return None
    return by_value(dim) if named == rest else dim


def group_counts(
    conn: sqlite3.Connection, space_id: int, query: GroupQuery, *, cube: bool | None
) -> list[GroupCounts]:
    """``Store.group_counts``: from the cube if ``cube`` (XTRACKER_REPORT_CUBE; None: whenever
    the rollup has it), the rollup was built with it (the server's catch-up rebuilds it when
    the setting changes) and the cube holds the answer; otherwise by scanning the clicks and
    events (store/sqlite/groups.py).

    A cohort window off the 15-minute grid (``--days N`` ends now) is the cube's for the
    15-minute buckets inside it and scanned for the minutes at either end: a cohort is the
    window's clicks, each uid in one, so the counts of its parts add up."""
    if cube is False:
        return groups.group_counts(conn, space_id, query)
    # one snapshot of both files: the cube's reads agree with each other and with the
    # scanned edges, and a rebuild (the setting changed) cannot drop the tables halfway
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        return _counts(conn, space_id, query)
    finally:
        if own:
            conn.execute("ROLLBACK")  # read only


def cohort_funnel(
    conn: sqlite3.Connection, space_id: int, window: Window, link_slug: str | None
) -> GroupCounts | None:
    """The cohort funnel of ``window`` (the space's clicks, or one link's) from the cube, as
    ``group_counts`` with no grouping answers it; None when the rollup was not built with the
    cube (the caller counts it from the rollup's rows)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        if not _built_with_cube(conn):
            return None
        link = () if link_slug is None else (Filter("link", (link_slug,)),)
        found = _counts(conn, space_id, GroupQuery(window, filters=Filters(link)))
    finally:
        if own:
            conn.execute("ROLLBACK")  # read only
    if found:
        return found[0]
    return GroupCounts(key=(), clicks=0, uids=dict.fromkeys(CANONICAL_EVENTS, 0))  # no click


def _counts(conn: sqlite3.Connection, space_id: int, query: GroupQuery) -> list[GroupCounts]:
    if not _built_with_cube(conn):
        return groups.group_counts(conn, space_id, query)
    w = query.window
    grid = _grid(query)
    found = None
    rests: list[tuple[int, int, int]] = []  # parts taken off (cube_edges.whole_days)
    if grid is not None:
        inner = Window(-(-w.from_ms // grid) * grid, w.to_ms // grid * grid)
        if grid == DAY_MS and inner.from_ms < inner.to_ms:  # a dimension's rows: UTC days
            inner, rests = whole_days(conn, space_id, w, inner)
        if inner.from_ms < inner.to_ms:
            found = cube_counts(conn, space_id, replace(query, window=inner))
    # a cohort's clicks of the filtered campaigns' links alone (activity mode reads the
    # window's events, and their clicks at any time: not by link)
    cohort = query.mode is FunnelMode.COHORT
    links = _links_kept(conn, space_id, query) if cohort else None
    if found is None:  # scanned whole (two dimensions...)
        scanned = groups.group_counts(conn, space_id, query, links)
        return _latest_names(conn, space_id, query, scanned)
    counted = {g.key for g in found}
    for lo, hi, sign in ((w.from_ms, inner.from_ms, 1), (inner.to_ms, w.to_ms, 1), *rests):
        if lo < hi:
            edge = groups.group_counts(conn, space_id, replace(query, window=Window(lo, hi)),
                                       links)  # fmt: skip
            found = add(found, edge, sign)
    # the groups of the scanned edges alone (by day: a cut day's) named as the cube names ids
    kept = [g for g in found if g.clicks > 0]
    new = _latest_names(conn, space_id, query, [g for g in kept if g.key not in counted])
    return [g for g in kept if g.key in counted] + new


#: The H keys' columns of the filters that name campaigns, ad sets or ads.
_H_COLUMNS = {"campaign": "campaign", "adset": "adset", "ad": "ad"}


def _links_kept(conn: sqlite3.Connection, space_id: int, query: GroupQuery) -> list[int] | None:
    """The links of every click that the query's filters on campaigns, ad sets or ads keep,
    for the scan of a window's edges (``groups.group_counts``: only those links' clicks are
    read, a few of a busy day's): the links of the cube's H keys of those ids, and of the clicks
    its catch-up has not read yet (committed since it caught up). None: no such filter, or a
    kept click without a link (the index by link cannot find those alone)."""
    kept = [f for f in query.filters.items if not f.exclude and f.dimension in _H_COLUMNS]
    if not kept:
        return None
    where = " AND ".join(f"{_H_COLUMNS[f.dimension]} IN ({', '.join('?' * len(f.values))})"
                         for f in kept)  # fmt: skip
    args = [v for f in kept for v in f.values]
    links = {r[0] for r in conn.execute(
        f"SELECT DISTINCT link_id FROM reports.cube_keys WHERE space_id = ? AND dim = ''"
        f" AND {where}", (space_id, *args))}  # fmt: skip
    # the clicks not read yet: above the catch-up's high mark, and its gaps; by id, each (an
    # OR of both read every click), ``+``: along the ids, not the space's index of its clicks
    read = mark(conn, CLICKS)
    unread = [("id > ?", [read.high])]
    if read.gaps:
        unread.append((f"id IN ({', '.join('?' * len(read.gaps))})", list(read.gaps)))
    for which, ids in unread:
        sql = f"SELECT link_id FROM main.clicks WHERE {which} AND +space_id = ?"
        links |= {r[0] for r in conn.execute(sql, (*ids, space_id))}
    return None if None in links else sorted(links)


def _latest_names(
    conn: sqlite3.Connection, space_id: int, query: GroupQuery, found: list[GroupCounts]
) -> list[GroupCounts]:
    """Scanned groups with the names the cube gives (each id's latest on any click so far, not
    among the window's clicks): with the cube built, a report names ids one way whether the
    cube or the scan counted it."""
    named = [d for d in query.by if d in NAME_OF]
    if not named or not found:
        return found
    # the names of the groups' ids alone (a few groups of thousands of ads)
    names: dict[tuple[str, str | None], str] = {}
    for d in named:
        ids = json.dumps(sorted({g.key[query.by.index(d)] for g in found} - {None}))
        names |= {(d, i): n for i, n in conn.execute(
            "SELECT id, name FROM reports.cube_names WHERE space_id = ? AND dim = ?"
            " AND id IN (SELECT value FROM json_each(?))", (space_id, d, ids))}  # fmt: skip
    out = []
    for g in found:
        latest = {NAME_OF[d]: names[(d, v)] for d, v in zip(query.by, g.key, strict=True)
                  if (d, v) in names}  # fmt: skip
        out.append(replace(g, names={**g.names, **latest}) if latest else g)
    return out


def _grid(query: GroupQuery) -> int | None:
    """The buckets the cube holds for ``query``'s rows: 15 minutes for the whole space, the H
    and C rows and a dimension's value rows, UTC days for a dimension's rows with link and campaign
    (cube_schema.LEVELS), which answer only where the query's days are UTC days and it is not
    by hour; None: not pre-aggregated."""
    dim = _dimension(query)
    if dim is None:
        return None
    if dim in (H, C) or dim.startswith(VALUE_ROWS):
        return _Q
    if "hour" in query.by:
        return None
    starts = bucket_starts(query.window, Bucket.DAY, zone(query.tz))
    return DAY_MS if all(start % DAY_MS == 0 for start in starts) else None


def _built_with_cube(conn: sqlite3.Connection) -> bool:
    """Whether the rollup has the report cube, ready (``cube_schema.ready``: not while it is
    being built)."""
    exists = conn.execute(
        "SELECT 1 FROM reports.sqlite_master WHERE type = 'table' AND name = 'rollup_format'"
    ).fetchone()
    return bool(exists) and ready(conn)


def cube_counts(
    conn: sqlite3.Connection, space_id: int, query: GroupQuery
) -> list[GroupCounts] | None:
    """The groups of ``query`` from the cube (module docstring), or None when the cube does
    not hold the answer. ``conn`` reads the rollup, brought up to date by the caller."""
    window = query.window
    if query.mode is not FunnelMode.COHORT:
        return None
    dim, grid = _dimension(query), _grid(query)
    if dim is None or grid is None or window.from_ms % grid or window.to_ms % grid:
        return None
    tz = zone(query.tz)
    with _collector_paused():
        reader = _Reader(conn, space_id, query, dim, Labels(tz))
        weigh = Weights(conn, space_id)
        for segment in segments(query, tz, weigh=weigh):
            reader.read(segment)
        for segment in segments(query, tz, local_days=True, weigh=weigh):
            reader.read(segment, money=True)
        answer = reader.answer()
        del reader  # its sums freed before the collector is back: it need not walk them
    return answer


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a report builds its groups (a dozen objects
    each, thousands of groups: the collector's passes over them cost a tenth of an ad report,
    more in a server holding more objects). They hold no cycles; memory is still freed as
    usual; the collector's next pass walks only what the report keeps. On again after if it
    was on before (of readers in other threads at the same time, the first to end that saw it
    on)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# A segment's rows of one kind are summed per key (and bucket) in a subquery ``c``, then
# joined to their keys' values and summed per group (the names looked up once per group),
# but by ad, a key's finest part, whose keys are about its groups: those are added up in
# Python. (Sorted by the integer key first: half the work of one GROUP BY by the values.)
_RANGE = "c.space_id = ? AND c.dim = ? AND c.level = ? AND c.bucket >= ? AND c.bucket < ?"
#: The same, when the rows are probed by bucket and key (cube_probe.py): the range is no
#: index constraint then (``+``), so that the primary key seeks each bucket and key.
_PROBED = "c.space_id = ? AND c.dim = ? AND c.level = ? AND +c.bucket >= ? AND +c.bucket < ?"
_TTC = cube_ttc.CONCAT.format("c.ttc")
_SUMS = ", ".join(f"sum(c.{c}) AS {c}" for c in COUNTS) + f", {_TTC} AS ttc"
_SUMMED = ", ".join(f"c.{c}" for c in (*COUNTS, "ttc"))
_MONEY_SUMS = ", ".join(f"max(c.{m}) AS {m}" if "scale" in m else f"sum(c.{m}) AS {m}"
                        for m in MONEY)  # fmt: skip


class _Reader:
    """Sums the rows of each segment per key in SQL (``_SUMS``; the keys then joined for their
    values, the filters in the WHERE clause), then adds up each group's keys and puts the
    groups together in Python."""

    def __init__(
        self, conn: sqlite3.Connection, space_id: int, query: GroupQuery, dim: str, labels: Labels
    ) -> None:
        self.conn, self.space_id, self.query, self.dim, self.labels = (
            conn, space_id, query, dim, labels)  # fmt: skip
        self.date = partial(labels, "date")  # a bucket's local day (the money's)
        # rows grouped by their bucket by hour only: by day, each segment is one local day
        # (``segments``), which names it
        self.timed = "hour" in query.by
        self.named = [d for d in query.by if d not in TIME_DIMENSIONS]
        # the dimension whose values the rows hold (None: the H or C rows)
        self.dimension = None if dim in (H, C) else dim.removeprefix(VALUE_ROWS)
        x = query.filters.of(self.dimension) if self.dimension else None
        # a dimension's clicks without a value: the C rows (the whole space's, for its value
        # rows) less the dimension's rows
        blanks = self.dimension is not None and (self.dimension in query.by
                                                 or (x is not None and x.exclude))  # fmt: skip
        self.sources = [(H, 1, False)] if dim == H else [(dim, 1, False)]
        if dim == H and not self.named and not query.filters:
            self.sources = [(ALL, 1, False)]  # the whole space: its own rows
        if blanks:
            self.sources += [(dim, -1, True), (ALL if dim.startswith(VALUE_ROWS) else C, 1, True)]
        self.groups: dict[tuple[str | None, ...], _Group] = {}
        self.keys = cube_probe.Keys(conn, space_id, query.filters)
        # plain rows (tuples: no sqlite3.Row per row); without a time dimension a row's first
        # columns are its group's key
        self.cursor = conn.cursor()
        self.cursor.row_factory = None
        self.plain = not self.timed and "day" not in query.by
        self.regroup = "ad" not in query.by
        # the latest name beside each named id of a group (cube_names), looked up in SQL once
        # per group (a campaign, ad set or ad is a key column of every kind of row)
        self.name_of = [NAME_OF[d] for d in query.by if d in NAME_OF]
        self.names = "".join(
            ", (SELECT n.name FROM reports.cube_names n WHERE n.space_id = k.space_id"
            f" AND n.dim = '{d}' AND n.id = k.{d})" for d in query.by if d in NAME_OF)  # fmt: skip

    def _select(self, key_dim: str, blank: bool) -> tuple[str, str, str, list[Any]] | None:
        """The group columns, the joins and the filter of one kind of rows, and the filter's
        arguments; None: the filters keep none of them."""
        columns = {"link": "l.slug", "campaign": "k.campaign", "adset": "k.adset", "ad": "k.ad"}
        if self.dimension is not None:
            columns[self.dimension] = "NULL" if blank else "k.value"
        where = ["true"]
        args: list[Any] = []
        for f in self.query.filters.items:
            column = columns[f.dimension]
            if column == "NULL":
                if not f.matches(None):
                    return None
                continue
            marks = ", ".join("?" * len(f.values))
            where.append(f"({column} IS NULL OR {column} NOT IN ({marks}))" if f.exclude
                         else f"{column} IN ({marks})")  # fmt: skip
            args += f.values
        groups = [columns[d] for d in self.named] + (["c.bucket"] if self.timed else [])
        if not self.named and not self.query.filters:  # the whole space: no key matters
            return ", ".join(["c.bucket"] * self.timed + ["0"]), "", "true", args
        joins = " CROSS JOIN reports.cube_keys k ON k.id = c.key_id"
        if "link" in self.named or self.query.filters.of("link"):
            joins += " LEFT JOIN main.links l ON l.id = k.link_id"
        return ", ".join([*groups, "0"]), joins, " AND ".join(where), args

    def _summed(
        self, table: str, by: str, sums: str, joins: str, where: str, span: str = _RANGE
    ) -> str:
        """The subquery ``c`` of ``table``'s rows of a segment summed per ``by`` (the key...):
        filtered in it (the keys joined), so that it sorts only the rows kept."""
        if where == "true":
            return f"(SELECT {by}, {sums} FROM reports.{table} c WHERE {span} GROUP BY {by}) c"
        return (f"(SELECT {by}, {sums} FROM reports.{table} c{joins} WHERE {span} AND {where}"
                f" GROUP BY {by}) c")  # fmt: skip

    def _key(self, row: Sequence[Any], segment: Segment) -> tuple[str | None, ...]:
        if self.plain:
            return tuple(row[: len(self.named)])
        values = iter(row)
        named = {d: next(values) for d in self.named}
        bucket = next(values) if self.timed else 0
        return tuple(self._time(d, segment, bucket) if d in TIME_DIMENSIONS else named[d]
                     for d in self.query.by)  # fmt: skip

    def _time(self, dimension: str, segment: Segment, bucket: int) -> str:
        if dimension == "day":
            assert segment.day is not None  # by day, the segments are the local days
            return segment.day
        return self.labels("hour", bucket)

    def read(self, s: Segment, *, money: bool = False) -> None:
        """The segment's rows summed per key, the keys joined for their values and filtered,
        added up per group: the counts, the time to convert and the names beside the ids (one
        query), or (``money``) the amounts."""
        width = len(self.named) + self.timed + 1
        for key_dim, source_sign, blank in self.sources:
            sign = source_sign * s.sign
            found = self._select(key_dim, blank)
            if found is None:
                continue
            columns, joins, where, extra = found
            args = (self.space_id, key_dim, s.level, s.lo, s.hi, *extra)
            # the rows of the keys the filters keep, by key where that reads fewer rows
            rows_joins, rows_where, span = joins, where, _RANGE
            ids = self.keys.of(key_dim, joins, where, extra) if where != "true" else None
            probe = None if ids is None else cube_probe.condition(ids, s.level, s.lo, s.hi)
            if probe == "":
                continue  # no key, or no bucket
            if probe is not None:
                rows_joins, rows_where, span, args = "", probe, _PROBED, args[:5]
            if money:
                self._money(s, columns, (joins, rows_joins, span), rows_where, args, width, sign)
                continue
            groups, plain, n = self.groups, self.plain, len(self.named)
            by, regroup = "c.key_id" + ", c.bucket" * self.timed, self.regroup
            per_group = f" GROUP BY {', '.join(str(i + 1) for i in range(width))}" * regroup
            ttc = width + _N  # after the key, the counts, then the time to convert, the names
            named = list(enumerate(self.name_of, ttc + 1))
            summed = self._summed("cube", by, _SUMS, rows_joins, rows_where, span)
            for row in self.cursor.execute(
                f"SELECT {columns}, {_SUMS if regroup else _SUMMED}{self.names} FROM"
                f" {summed}{joins}{per_group}", args
            ):  # fmt: skip
                key = tuple(row[:n]) if plain else self._key(row, s)
                g = groups.get(key)
                if g is None:
                    counts = list(row[width:ttc])
                    groups[key] = g = _Group(counts if sign == 1 else [-c for c in counts])
                else:
                    g.counts = [a + sign * b for a, b in zip(g.counts, row[width:ttc], strict=True)]
                if row[ttc]:
                    g.ttc.append((row[ttc], sign))
                for i, name in named:
                    if row[i] is not None:
                        g.names[name] = row[i]

    def _money(self, s: Segment, columns: str, joins: tuple[str, str, str], where: str,
               args: tuple[Any, ...], width: int, sign: int) -> None:  # fmt: skip
        """The amounts of the segment per group, currency and local day: the segment's own day
        when it is one, else each bucket's (a UTC day, hour or 15 minutes). Kept as read: a group's
        are added up when first read (cube_money.py). ``joins``: the keys' for the group's
        columns, those the filter ``where`` needs, and the rows' range."""
        dated = s.day is not None
        bucket = "" if dated else "c.bucket, "
        by = "c.key_id, " + "c.bucket, " * (not dated) + "c.currency"
        groups = ", ".join(str(i + 1) for i in range(width + 1 + (not dated)))
        per_group = f" GROUP BY {groups}" * self.regroup
        sums = _MONEY_SUMS if self.regroup else ", ".join(f"c.{m}" for m in MONEY)
        # a day's buckets summed per key first; by bucket, a row is one key's bucket already
        keys, rows_joins, span = joins
        rows = (f"{self._summed('cube_money', by, _MONEY_SUMS, rows_joins, where, span)}{keys}"
                if dated else f"reports.cube_money c{keys} WHERE {span} AND {where}")  # fmt: skip
        found, day, at = self.groups.get, s.day, width + (not dated)
        plain, n = self.plain, len(self.named)
        for row in self.cursor.execute(
            f"SELECT {columns}, {bucket}c.currency, {sums} FROM {rows}{per_group}", args
        ):
            key = tuple(row[:n]) if plain else self._key(row, s)
            g = found(key)
            if g is None:
                self.groups[key] = g = _Group([0] * _N)
            if g.money is None:
                g.money = MoneyRows(self.date)
            g.money.add(day, at, row, sign)

    def answer(self) -> list[GroupCounts]:
        out = []
        for key, g in self.groups.items():
            c = g.counts
            if c[0] <= 0:
                continue
            money, reversed_ = g.money, c[_REVERSED]
            out.append(
                GroupCounts(
                    key=key,
                    clicks=c[0],
                    uids={event: c[i] for i, event in _STEPS},
                    deposits=c[_DEPOSITS],
                    first_deposits=c[_DEPOSIT],
                    revenue=Amounts(money) if money else {},
                    reversed_deposits=reversed_,
                    reversed_revenue=Amounts(money, gross=False) if money and reversed_ else {},
                    # every canonical event, zeros too (as store/sqlite/groups.py)
                    ttc=cube_ttc.Histograms(g.ttc),
                    names=g.names,
                ))  # fmt: skip
        return out
