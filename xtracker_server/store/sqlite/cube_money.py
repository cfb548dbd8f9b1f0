"""A cube group's money (``GroupCounts.revenue`` and ``reversed_revenue``), added up when
first read.

A report reads the ``cube_money`` rows of every group of its window (store/sqlite/cube.py),
but shows a hundred of the thousands of groups of a report by ad: a group keeps its rows as
read (``MoneyRows``) and adds them up per currency and local day, in integers, only when its
revenue is first read (``Amounts``), then makes each day's sum an exact ``Decimal``
(``sum_from_parts``). Adding up and converting every group's money at once was a third of an
ad report.

A row's amounts are ``MONEY`` (``cube_schema.cube_money``'s columns): the deposits' count,
integer and fraction sums and most decimals, then the same of their reversed part. Counts and
sums add up with the row's sign; the most decimals are the largest of the rows'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from xtracker_server.domain.reports import sum_from_parts
from xtracker_server.store.sqlite.lazy import LazyMapping
from xtracker_wire import MAX_VALUE_DECIMALS

__all__ = ["MONEY", "Amounts", "MoneyRows"]

MONEY = ("n", "units", "fraction", "scale", "rn", "r_units", "r_fraction", "r_scale")
_SUMMED = (0, 1, 2, 4, 5, 6)  # the counts and sums (3 and 7: the most decimals)
_GROSS, _REVERSED = 0, 4  # where a row's gross and reversed amounts start in MONEY


class MoneyRows:
    """One group's ``cube_money`` rows as a report read them: each with the local day of its
    segment (None: its bucket, the column before the currency, dates it), where its currency
    is in the row (the amounts follow it) and its sign. ``date`` names a bucket's local day
    (cube.py's ``_Labels``)."""

    __slots__ = ("_date", "_rows", "_sums")

    def __init__(self, date: Callable[[int], str]) -> None:
        self._date = date
        self._rows: list[tuple[str | None, int, Sequence[Any], int]] = []
        self._sums: dict[str, dict[str, list[int]]] | None = None

    def add(self, day: str | None, at: int, row: Sequence[Any], sign: int) -> None:
        self._rows.append((day, at, row, sign))

    def sums(self) -> dict[str, dict[str, list[int]]]:
        """currency -> local day (ISO date) -> the ``MONEY`` of the rows, added up."""
        if self._sums is None:  # two threads reading at once both find the same sums
            out: dict[str, dict[str, list[int]]] = {}
            for day, at, row, sign in self._rows:
                if day is None:
                    date, currency = self._date(row[at - 1]), row[at]
                else:
                    date, currency = day[:10], row[at]
                amounts = row[at + 1 : at + 1 + len(MONEY)]
                acc = out.setdefault(currency, {}).setdefault(date, [0] * len(MONEY))
                for i in _SUMMED:
                    acc[i] += sign * amounts[i]
                acc[3], acc[7] = max(acc[3], amounts[3]), max(acc[7], amounts[7])
            # the rows kept: a thread that found no sums yet adds them up too, not from []
            self._sums = out
        return self._sums


class Amounts(LazyMapping[str, Mapping[str, Decimal]]):
    """A group's gross (``gross``) or reversed amounts per currency and local day, of the days
    with any, from its ``MoneyRows`` when first read."""

    __slots__ = ("_at", "_money", "_rows")

    def __init__(self, rows: MoneyRows, *, gross: bool = True) -> None:
        self._rows = rows
        self._at = _GROSS if gross else _REVERSED
        self._money: dict[str, dict[str, Decimal]] | None = None

    def _read(self) -> dict[str, dict[str, Decimal]]:
        if self._money is None:
            at, out = self._at, {}
            for currency, days in self._rows.sums().items():
                amounts = {
                    day: sum_from_parts(m[at + 1], m[at + 2], m[at + 3], MAX_VALUE_DECIMALS)
                    for day, m in days.items()
                    if m[at] > 0
                }
                if amounts:
                    out[currency] = amounts
            self._money = out
        return self._money
