"""Costs from a Facebook Ads Manager export (Reports -> Export table data -> .csv), pure.

The columns read (by header, any order, any case; other columns are ignored):

- the day: ``Day`` (the export broken down by day: Breakdown -> By time -> Day), else
  ``Reporting starts`` and ``Reporting ends``, which must then be the same day (an export of
  a longer range without the daily breakdown is refused row by row: a week's total cannot be
  spread over its days honestly);
- the object: ``Ad ID``, else ``Ad set ID``, else ``Campaign ID`` (the finest present sets
  the level; Customize columns -> Settings adds them); its name from ``Ad name``,
  ``Ad set name`` or ``Campaign name`` if present;
- the amount: ``Amount spent (USD)``: the currency is in the header; a ``Currency`` column,
  if present, overrides it per row. An empty amount is 0.

A row with every id and name cell empty (a totals or blank line) is skipped and counted.
Anything else wrong is an error naming its line (the header is line 1), and the file is
refused whole: ``CostImportError.problems`` lists every bad line.

    >>> text = "Day,Campaign name,Campaign ID,Amount spent (EUR)\\n2026-11-01,Spring,120,9.50\\n"
    >>> plan = parse_ads_manager(text)
    >>> plan.entries[0].object_id, plan.entries[0].amount, plan.entries[0].currency
    ('120', Decimal('9.50'), 'EUR')
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from xtracker_server.domain.costs import (
    CostEntry,
    CostLevel,
    check_object_id,
    parse_amount,
    parse_day,
)
from xtracker_server.exceptions import XTrackerServerError
from xtracker_wire import check_currency

__all__ = ["MAX_ROWS", "CostImportError", "ImportPlan", "parse_ads_manager"]

#: The most rows one import takes (a year of 270 ads by day); split a larger export.
MAX_ROWS = 100_000
#: At most this many bad lines are listed (the rest are counted).
MAX_PROBLEMS = 50

_AMOUNT_HEADER = re.compile(r"amount spent \(([A-Za-z0-9]{3,10})\)")
#: level -> (id column, name column), finest first.
_OBJECT_COLUMNS: tuple[tuple[CostLevel, str, str], ...] = (
    (CostLevel.AD, "ad id", "ad name"),
    (CostLevel.ADSET, "ad set id", "ad set name"),
    (CostLevel.CAMPAIGN, "campaign id", "campaign name"),
)


class CostImportError(XTrackerServerError, ValueError):
    """The file cannot be imported; ``problems`` is ``(line, what is wrong)``, line 0 for the
    header."""

    def __init__(self, problems: list[tuple[int, str]], more: int = 0) -> None:
        self.problems = problems
        self.more = more
        said = "; ".join(f"line {n}: {p}" if n else p for n, p in problems)
        super().__init__(said + (f"; and {more} more bad lines" if more else ""))


@dataclass(frozen=True)
class ImportPlan:
    level: CostLevel
    entries: list[CostEntry]
    skipped: int  # totals and blank lines


def _header_error(problem: str) -> CostImportError:
    return CostImportError([(0, problem)])


def parse_ads_manager(text: str) -> ImportPlan:
    """The costs of an Ads Manager CSV export (see the module's docstring)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise _header_error("the file is empty: export the table as CSV from Ads Manager") from None
    except csv.Error as exc:
        raise _header_error(f"line 1 is not CSV: {exc}") from None
    columns = {name.strip().lower(): i for i, name in enumerate(header)}

    amount_at, header_currency = None, None
    for name, i in columns.items():
        found = _AMOUNT_HEADER.fullmatch(name)
        if found:
            amount_at, header_currency = i, found.group(1).upper()
            break
    if amount_at is None or header_currency is None:
        raise _header_error(
            'no "Amount spent (XXX)" column (XXX the account currency): export the table with'
            " the Amount spent column"
        )
    level_columns = next(((lv, i, n) for lv, i, n in _OBJECT_COLUMNS if i in columns), None)
    if level_columns is None:
        raise _header_error(
            'no "Campaign ID", "Ad set ID" or "Ad ID" column: add one in Ads Manager'
            " (Columns -> Customize columns -> Settings) and export again"
        )
    level, id_column, name_column = level_columns
    if "day" not in columns and not {"reporting starts", "reporting ends"} <= columns.keys():
        raise _header_error(
            'no "Day" column (Breakdown -> By time -> Day) nor "Reporting starts" and'
            ' "Reporting ends"'
        )
    object_cells = [columns[c] for lv in _OBJECT_COLUMNS for c in lv[1:] if c in columns]

    def cell(row: list[str], name: str) -> str:
        i = columns.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    entries: list[CostEntry] = []
    seen: dict[tuple[date, str], int] = {}
    problems: list[tuple[int, str]] = []
    bad = skipped = 0
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if not any(row[i].strip() for i in object_cells if i < len(row)):
                skipped += 1
                continue
            if len(entries) >= MAX_ROWS:
                raise CostImportError([(line, f"more than {MAX_ROWS} rows: split the export")])
            try:
                day = _row_day(cell, row)
                object_id = check_object_id(cell(row, id_column), level)
                raw_amount = row[amount_at].strip() if amount_at < len(row) else ""
                amount = parse_amount(raw_amount or "0", what="Amount spent")
                currency = check_currency(cell(row, "currency") or header_currency)
            except ValueError as exc:
                bad += 1
                if len(problems) < MAX_PROBLEMS:
                    problems.append((line, str(exc)))
                continue
            first = seen.setdefault((day, object_id), line)
            if first != line:
                bad += 1
                if len(problems) < MAX_PROBLEMS:
                    problems.append(
                        (line, f"{level.value} {object_id} on {day} is on line {first} too")
                    )
                continue
            entries.append(
                CostEntry(
                    day, level, object_id, amount, currency, cell(row, name_column)[:400] or None
                )
            )
    except csv.Error as exc:
        raise CostImportError([*problems, (reader.line_num, f"not CSV: {exc}")]) from None
    if problems:
        raise CostImportError(problems, bad - len(problems))
    return ImportPlan(level, entries, skipped)


def _row_day(cell: Callable[[list[str], str], str], row: list[str]) -> date:
    day_text = cell(row, "day")
    if day_text:
        return parse_day(day_text, what="Day")
    starts = parse_day(cell(row, "reporting starts"), what="Reporting starts")
    ends = parse_day(cell(row, "reporting ends"), what="Reporting ends")
    if starts != ends:
        raise ValueError(
            f"the row covers {starts} to {ends}: export with Breakdown -> By time -> Day, so"
            " that each row is one day's spend"
        )
    return starts
