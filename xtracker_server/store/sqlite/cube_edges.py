"""The parts of a grouped report's window that the report cube does not hold, counted from the
clicks (store/sqlite/groups.py) and added to (or taken off) what the cube counted
(store/sqlite/cube.py ``_counts``): a cohort is the window's clicks, each uid in one, so the
counts of disjoint parts of it add up."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from xtracker_server.domain.groups import TTC_BOUNDS_S, GroupCounts
from xtracker_server.domain.reports import DAY_MS, Window
from xtracker_server.store.sqlite.cube_segments import Weights
from xtracker_server.store.sqlite.lazy import LazyMapping

__all__ = ["add", "whole_days"]

_BINS = len(TTC_BOUNDS_S) + 1


def whole_days(
    conn: sqlite3.Connection, space_id: int, w: Window, inner: Window
) -> tuple[Window, list[tuple[int, int, int]]]:
    """Where the rest of an edge's UTC day holds fewer clicks than the edge (by the whole
    space's 15-minute rows), the whole day is read from a dimension's day rows and the rest
    counted from the clicks and taken off (sign -1): a week that ends now reads the minutes
    since midnight, or nothing (the rest of today is still to come), not a day of clicks."""
    weigh, rests = Weights(conn, space_id), []
    lo, hi = inner.from_ms, inner.to_ms
    if w.from_ms < lo and weigh(lo - DAY_MS, w.from_ms) < weigh(w.from_ms, lo):
        rests.append((lo - DAY_MS, w.from_ms, -1))
        lo -= DAY_MS
    if hi < w.to_ms and weigh(w.to_ms, hi + DAY_MS) < weigh(hi, w.to_ms):
        rests.append((w.to_ms, hi + DAY_MS, -1))
        hi += DAY_MS
    return Window(lo, hi), rests


def add(some: list[GroupCounts], more: list[GroupCounts], sign: int = 1) -> list[GroupCounts]:
    """The groups of two disjoint sets of clicks, added up per key (the names: ``some``'s
    first, the cube's latest); ``sign`` -1: ``more``'s taken off ``some`` (a subset of them:
    an amount that comes to zero is left out)."""
    out = {g.key: g for g in some}
    for g in more:
        a = out.get(g.key)
        if a is None:
            if sign == 1:
                out[g.key] = g
                continue
            a = GroupCounts(key=g.key, clicks=0, uids={})  # (the rest of a day is in it)
        out[g.key] = GroupCounts(
            key=g.key,
            clicks=a.clicks + sign * g.clicks,
            uids={e: a.uids.get(e, 0) + sign * g.uids.get(e, 0) for e in {*a.uids, *g.uids}},
            deposits=a.deposits + sign * g.deposits,
            first_deposits=a.first_deposits + sign * g.first_deposits,
            revenue=_Summed(a.revenue, g.revenue, sign, _add_money),
            reversed_deposits=a.reversed_deposits + sign * g.reversed_deposits,
            reversed_revenue=_Summed(a.reversed_revenue, g.reversed_revenue, sign, _add_money),
            ttc=_Summed(a.ttc, g.ttc, sign, _add_ttc),
            names={**g.names, **a.names},
        )  # fmt: skip
    return list(out.values())


class _Summed(LazyMapping[str, Any]):
    """Two groups' revenue or histograms added up (``add``) when first read: a cube's group
    keeps its own lazy (cube_ttc.Histograms, cube_money.Amounts) until then, and a report by
    ad reads a hundred of the thousands of groups a window's edges touch."""

    __slots__ = ("_add", "_done", "_parts")

    def __init__(self, a: Mapping[str, Any], b: Mapping[str, Any], sign: int,
                 adder: Callable[[Mapping[str, Any], Mapping[str, Any], int], dict[str, Any]]
                 ) -> None:  # fmt: skip
        self._parts = (a, b, sign)  # kept: two threads reading at once both work out the same
        self._add = adder
        self._done: dict[str, Any] | None = None

    def _read(self) -> Mapping[str, Any]:
        if self._done is None:
            self._done = self._add(*self._parts)
        return self._done


def _add_ttc(
    a: Mapping[str, tuple[int, ...]], b: Mapping[str, tuple[int, ...]], sign: int
) -> dict[str, tuple[int, ...]]:
    zero = (0,) * _BINS
    return {e: tuple(x + sign * y for x, y in zip(a.get(e, zero), b.get(e, zero), strict=True))
            for e in {*a, *b}}  # fmt: skip


def _add_money(
    a: Mapping[str, Mapping[str, Decimal]], b: Mapping[str, Mapping[str, Decimal]], sign: int = 1
) -> dict[str, dict[str, Decimal]]:
    out = {currency: dict(days) for currency, days in a.items()}
    for currency, days in b.items():
        mine = out.setdefault(currency, {})
        for day, amount in days.items():
            mine[day] = mine.get(day, Decimal(0)) + sign * amount
            if sign < 0 and not mine[day]:
                del mine[day]
        if not mine:
            del out[currency]
    return out
