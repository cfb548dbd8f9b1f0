"""Grouped reports from the report cube (store/sqlite/cube_schema.py): a bounded number of
pre-aggregated rows per report, however many events the window holds (issue 17 §6).

``cube_counts`` answers a cohort ``GroupQuery`` whose window starts and ends on a 15-minute
boundary, grouped and filtered by:

- any of link, campaign, ad set, ad (at most two of them nested), from the H rows; or
- ONE other dimension (campaign_name, placement, utm_*, country, device, os, browser,
  referrer, a declared ``sub.NAME``), with link and campaign beside it, from that
  dimension's rows; clicks without a value of it are the H rows less its rows;
- and the day or the hour in the query's time zone.

Anything else (activity mode, another combination, a window off the 15-minute grid) answers
None: the caller counts from the events instead.

The window is read as 15-minute buckets at its edges and whole UTC days between them; grouped
by day, each local day is read so (a day that is not a UTC day is all 15-minute buckets), and
grouped by hour, all of it in 15-minute buckets. Cohort revenue is dated by the click's day in
the query's time zone; a UTC-day row's revenue is dated by the local day of the row's start
(exact in UTC, and whenever the report groups by day or hour).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, tzinfo
from decimal import Decimal

from xtracker_server.domain.filters import SUB_ID_PREFIX
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
    bucket_starts,
    iso_local,
    sum_from_parts,
    zone,
)
from xtracker_server.store.sqlite.cube_feed import D_DIMENSIONS, H_DIMENSIONS
from xtracker_server.store.sqlite.cube_schema import LEVEL_15M, LEVEL_DAY, LEVEL_MS, H
from xtracker_wire import CANONICAL_EVENTS, MAX_VALUE_DECIMALS

__all__ = ["cube_counts"]

_Q = LEVEL_MS[LEVEL_15M]
_BINS = len(TTC_BOUNDS_S) + 1


@dataclass(frozen=True)
class _Segment:
    """Buckets ``[lo, hi)`` of one level; ``day``: the local day they belong to (grouped by
    day), as its start in ISO local time."""

    level: int
    lo: int
    hi: int
    day: str | None = None


@dataclass
class _Group:
    clicks: int = 0
    uids: list[int] = field(default_factory=lambda: [0] * len(CANONICAL_EVENTS))
    deposits: int = 0
    reversed: int = 0
    # currency -> day -> [n, units, fraction, scale, rn, r_units, r_fraction, r_scale]
    money: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    ttc: dict[str, list[int]] = field(default_factory=dict)


def _dimension(query: GroupQuery) -> str | None:
    """The rows that answer ``query``: ``H``, a dimension's, or None (not pre-aggregated)."""
    named = {d for d in query.by if d not in TIME_DIMENSIONS}
    named |= {f.dimension for f in query.filters.items}
    if named <= set(H_DIMENSIONS):
        return H
    rest = named - {"link", "campaign"}
    if len(rest) != 1:
        return None
    (dim,) = rest
    return dim if dim in D_DIMENSIONS or dim.startswith(SUB_ID_PREFIX) else None


def _split(lo: int, hi: int, day: str | None = None) -> list[_Segment]:
    """``[lo, hi)`` as 15-minute edges and the whole UTC days between them."""
    first, last = -(-lo // DAY_MS) * DAY_MS, hi // DAY_MS * DAY_MS
    if first >= last:
        return [_Segment(LEVEL_15M, lo, hi, day)] if lo < hi else []
    parts = [(LEVEL_15M, lo, first), (LEVEL_DAY, first, last), (LEVEL_15M, last, hi)]
    return [_Segment(level, a, b, day) for level, a, b in parts if a < b]


def _segments(query: GroupQuery, tz: tzinfo) -> list[_Segment]:
    f, t = query.window.from_ms, query.window.to_ms
    if "hour" in query.by:
        return [_Segment(LEVEL_15M, f, t)]
    if "day" not in query.by:
        return _split(f, t)
    starts = bucket_starts(query.window, Bucket.DAY, tz)
    ends = [*starts[1:], t]
    out: list[_Segment] = []
    for start, end in zip(starts, ends, strict=True):
        out += _split(max(start, f), min(end, t), iso_local(start, tz))
    return out


class _Labels:
    """Local days and hours of bucket starts, worked out once each."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.cache: dict[tuple[str, int], str] = {}

    def __call__(self, what: str, ms: int) -> str:
        found = self.cache.get((what, ms))
        if found is None:
            local = datetime.fromtimestamp(ms / 1000, self.tz)
            if what == "date":
                found = local.date().isoformat()
            elif what == "hour":
                found = iso_local(ms - local.minute * 60_000, self.tz)
            else:  # the day's start
                start = datetime.combine(local.date(), time(0), tzinfo=self.tz)
                found = iso_local(int(start.timestamp() * 1000), self.tz)
            self.cache[(what, ms)] = found
        return found


def cube_counts(
    conn: sqlite3.Connection, space_id: int, query: GroupQuery
) -> list[GroupCounts] | None:
    """The groups of ``query`` from the cube (module docstring), or None when the cube does
    not hold the answer. ``conn`` reads the rollup, brought up to date by the caller."""
    window = query.window
    if query.mode is not FunnelMode.COHORT or window.from_ms % _Q or window.to_ms % _Q:
        return None
    dim = _dimension(query)
    if dim is None:
        return None
    tz = zone(query.tz)
    reader = _Reader(conn, space_id, query, dim, _Labels(tz))
    for segment in _segments(query, tz):
        reader.read(segment)
    return reader.answer()


class _Reader:
    def __init__(
        self, conn: sqlite3.Connection, space_id: int, query: GroupQuery, dim: str, labels: _Labels
    ) -> None:
        self.conn, self.space_id, self.query, self.dim, self.labels = (
            conn, space_id, query, dim, labels)  # fmt: skip
        self.timed = any(d in TIME_DIMENSIONS for d in query.by)
        slugs = dict(conn.execute("SELECT id, slug FROM main.links WHERE space_id = ?",
                                  (space_id,)).fetchall())  # fmt: skip
        # What a key says of each dimension the query names, and of the ones beside it.
        self.attrs: dict[tuple[str, int], dict[str, str | None]] = {}
        for key_dim in {H, dim}:
            for key_id, value, link_id, campaign, adset, ad in conn.execute(
                "SELECT id, value, link_id, campaign, adset, ad FROM reports.cube_keys"
                " WHERE space_id = ? AND dim = ?",
                (space_id, key_dim),
            ):
                link = slugs.get(link_id) if link_id is not None else None
                a = {"link": link, "campaign": campaign, "adset": adset, "ad": ad}
                if dim != H:
                    a[dim] = value
                self.attrs[(key_dim, key_id)] = a
        x = query.filters.of(dim) if dim != H else None
        # a dimension's clicks without a value: the H rows less the dimension's rows
        self.blanks = dim != H and (dim in query.by or (x is not None and x.exclude))
        self.groups: dict[tuple[str | None, ...], _Group] = defaultdict(_Group)
        self.memo: dict[tuple[str, int, bool], tuple[str | None, ...] | None] = {}

    def _key(self, key_dim: str, key_id: int, blank: bool) -> tuple[str | None, ...] | None:
        """The group key's dimension values (None: filtered out); time comes later."""
        memo = (key_dim, key_id, blank)
        if memo in self.memo:
            return self.memo[memo]
        attrs = self.attrs.get((key_dim, key_id))
        found: tuple[str | None, ...] | None = None
        if attrs is not None:
            if blank:
                attrs = {**attrs, self.dim: None}
            if all(f.matches(attrs.get(f.dimension)) for f in self.query.filters.items):
                found = tuple(attrs.get(d) for d in self.query.by)
        self.memo[memo] = found
        return found

    def _sources(self) -> Iterator[tuple[str, int, bool]]:
        """Which rows to read, and with which sign: a dimension's rows count for their value
        and, taken off, for the blank; the H rows count for the blank."""
        if self.dim == H:
            yield H, 1, False
            return
        yield self.dim, 1, False
        if self.blanks:
            yield self.dim, -1, True
            yield H, 1, True

    def _group(self, key: tuple[str | None, ...], segment: _Segment, bucket: int) -> _Group:
        if self.timed:
            key = tuple(self._time(d, segment, bucket) if d in TIME_DIMENSIONS else v
                        for d, v in zip(self.query.by, key, strict=True))  # fmt: skip
        return self.groups[key]

    def _time(self, dimension: str, segment: _Segment, bucket: int) -> str:
        if dimension == "day" and segment.day is not None:
            return segment.day
        return self.labels("hour" if dimension == "hour" else "day", bucket)

    def read(self, s: _Segment) -> None:
        bucket = "bucket" if self.timed else "min(bucket)"
        group_by = " GROUP BY key_id, bucket" if self.timed else " GROUP BY key_id"
        where = "space_id = ? AND dim = ? AND level = ? AND bucket >= ? AND bucket < ?"
        for key_dim, sign, blank in self._sources():
            args = (self.space_id, key_dim, s.level, s.lo, s.hi)
            for key_id, at, *counts in self.conn.execute(
                f"SELECT key_id, {bucket}, sum(clicks), sum(contact), sum(subscribed),"
                f" sum(registration), sum(deposit), sum(deposits), sum(reversed)"
                f" FROM reports.cube WHERE {where}{group_by}",
                args,
            ):
                key = self._key(key_dim, key_id, blank)
                if key is None:
                    continue
                g = self._group(key, s, at)
                g.clicks += sign * counts[0]
                for i in range(len(CANONICAL_EVENTS)):
                    g.uids[i] += sign * counts[1 + i]
                g.deposits += sign * counts[5]
                g.reversed += sign * counts[6]
            for key_id, at, step, b, n in self.conn.execute(
                f"SELECT key_id, {bucket}, step, bin, sum(n) FROM reports.cube_ttc WHERE {where}"
                f" GROUP BY key_id, {'bucket, ' if self.timed else ''}step, bin",
                args,
            ):
                key = self._key(key_dim, key_id, blank)
                if key is not None:
                    hist = self._group(key, s, at).ttc.setdefault(step, [0] * _BINS)
                    hist[b] += sign * n
            for key_id, at, currency, *m in self.conn.execute(
                "SELECT key_id, bucket, currency, n, units, fraction, scale, rn, r_units,"
                f" r_fraction, r_scale FROM reports.cube_money WHERE {where}",
                args,
            ):
                key = self._key(key_dim, key_id, blank)
                if key is None:
                    continue
                day = self.labels("date", at)
                acc = self._group(key, s, at).money.setdefault(currency, {})
                acc_day = acc.setdefault(day, [0] * 8)
                for i in (0, 1, 2, 4, 5, 6):
                    acc_day[i] += sign * m[i]
                for i in (3, 7):
                    acc_day[i] = max(acc_day[i], m[i])

    def _names(self, key: tuple[str | None, ...]) -> dict[str, str]:
        names: dict[str, str] = {}
        for d, value in zip(self.query.by, key, strict=True):
            if d in NAME_OF and value is not None:
                row = self.conn.execute(
                    "SELECT name FROM reports.cube_names WHERE space_id = ? AND dim = ? AND id = ?",
                    (self.space_id, d, value),
                ).fetchone()
                if row is not None:
                    names[NAME_OF[d]] = row[0]
        return names

    def answer(self) -> list[GroupCounts]:
        out = []
        for key, g in self.groups.items():
            if g.clicks <= 0:
                continue
            uids = dict(zip(CANONICAL_EVENTS, g.uids, strict=True))
            out.append(
                GroupCounts(
                    key=key,
                    clicks=g.clicks,
                    uids=uids,
                    deposits=g.deposits,
                    first_deposits=uids["deposit"],
                    revenue=_money(g.money, 0),
                    reversed_deposits=g.reversed,
                    reversed_revenue=_money(g.money, 4),
                    ttc={s: tuple(h) for s, h in g.ttc.items() if any(h)},
                    names=self._names(key),
                )
            )
        return out


def _money(money: dict[str, dict[str, list[int]]], at: int) -> dict[str, dict[str, Decimal]]:
    """Gross (``at`` 0) or reversed (4) amounts per currency and day, of the days with any."""
    out: dict[str, dict[str, Decimal]] = {}
    for currency, days in money.items():
        for day, m in days.items():
            n, units, fraction, scale = m[at : at + 4]
            if n > 0:
                amount = sum_from_parts(units, fraction, scale, MAX_VALUE_DECIMALS)
                out.setdefault(currency, {})[day] = amount
    return out
