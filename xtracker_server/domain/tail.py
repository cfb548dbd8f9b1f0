"""Following tables whose row ids may commit out of order: the watermark of the live stream's
reader, and the cursor a stream client resumes from (docs/reports.md#the-live-stream).

A row's id is handed out when it is inserted, but the row is visible only once its transaction
commits. With one SQLite writer ids commit in order; with several writers (PostgreSQL, see
docs/architecture.md) id 12 may commit after id 13, and a cursor that remembers only "the last
id seen" would skip 12 for ever. So both sides remember the holes:

- The reader keeps a ``Watermark`` per table: ``high``, the highest id it has read, and
  ``gaps``, the ids below ``high`` it has not read yet, each with the time it was first missed.
  Every poll reads the rows above ``high`` (a bounded range) and the rows whose ids are gaps: a
  gap that gets committed is delivered then, once. A gap open for ``GAP_S`` seconds is given up
  (a rolled-back insert, a deleted row, a number a sequence skipped), and at most ``MAX_GAPS``
  are kept (the newest: an old hole is the likeliest to be permanent). ``low`` is one below the
  oldest open gap, or ``high``: every id at or below it is settled.
- A client's ``StreamCursor`` is, per table, a ``low`` and the ids above it already delivered
  (``seen``). Each message raises ``low`` to ``min(its id, the reader's low)`` (all earlier ids
  of the space were delivered in order), so ``seen`` holds only what was delivered above an open
  gap: with ids committing in order it is empty and the cursor reads ``12-345-6`` (click, event,
  delivery attempt). With a gap it reads ``12-345.2.5-6``: events up to 345 and 347, 350 (offsets
  from 345) delivered. Resuming delivers every row above ``low`` that is not in ``seen``: each row
  once, whatever order the ids committed in. The text names at most ``MAX_SEEN`` ids per table;
  past that its ``low`` moves up (a row committing later below it is then not sent on resume).

The report rollup (store/sqlite/rollup.py) follows the inbox and its two queues with the same
``Watermark`` (domain/watermark.py), kept in its file, with longer limits: a report must not
lose an event to a slow transaction, a stream only shows it late.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from xtracker_server.domain.watermark import GAP_S as GAP_S
from xtracker_server.domain.watermark import MAX_GAPS as MAX_GAPS
from xtracker_server.domain.watermark import Watermark as Watermark

#: What a stream shows, in the order of the cursor's three parts (clicks, inbox rows, attempts).
KINDS: tuple[str, str, str] = ("click", "event", "delivery")
#: At most this many delivered ids above ``low`` per table in a cursor.
MAX_SEEN = 100
#: The largest row id (SQLite's and PostgreSQL's bigint).
MAX_ID = 2**63 - 1

Ids = tuple[int, int, int]


class StreamCursor:
    """Where a client of the stream is (see the module docstring): per table a ``low`` and the
    ids above it already delivered. Text: ``12-345-6`` or ``12-345.2.5-6``."""

    def __init__(self, lows: Sequence[int], seen: Sequence[Iterable[int]] = ((), (), ())) -> None:
        self.lows: list[int] = list(lows)
        self.seen: list[set[int]] = [
            {i for i in s if i > low} for s, low in zip(seen, lows, strict=True)
        ]

    def delivers(self, kind: int, row_id: int, settled: int) -> bool:
        """Whether the row ``row_id`` of table ``kind`` is new to the client; if so, it counts
        as delivered. ``settled``: the reader's low, every id at or below it is settled. Rows of
        one table must come in id order."""
        low, seen = self.lows[kind], self.seen[kind]
        if row_id <= low or row_id in seen:
            return False
        seen.add(row_id)
        low = max(low, min(row_id, settled))
        while low + 1 in seen:  # nothing is missing up to there
            low += 1
        self._raise(kind, low)
        return True

    def settle(self, lows: Sequence[int]) -> None:
        """Every row of the space up to ``lows`` was delivered (or given up by the reader)."""
        for kind, low in enumerate(lows):
            self._raise(kind, low)

    def _raise(self, kind: int, low: int) -> None:
        if low > self.lows[kind]:
            self.lows[kind] = low
            self.seen[kind] = {i for i in self.seen[kind] if i > low}

    def text(self) -> str:
        parts = []
        for low, seen in zip(self.lows, self.seen, strict=True):
            ids = sorted(seen)
            if len(ids) > MAX_SEEN:  # the text names the newest; the stream itself knows all
                low, ids = ids[-MAX_SEEN - 1], ids[-MAX_SEEN:]
            parts.append(".".join([str(low), *(str(i - low) for i in ids)]))
        return "-".join(parts)

    @classmethod
    def parse(cls, raw: str) -> StreamCursor | None:
        """The cursor of a ``text()``, or None when ``raw`` is not one (ASCII digits only, no
        id above ``MAX_ID``, no more than ``MAX_SEEN`` ids per table)."""
        if len(raw) > _MAX_TEXT or not _TEXT.fullmatch(raw.strip()):
            return None
        lows: list[int] = []
        seen: list[set[int]] = []
        for part in raw.strip().split("-"):
            numbers = [int(n) for n in part.split(".")]
            low, offsets = numbers[0], numbers[1:]
            if len(offsets) > MAX_SEEN or 0 in offsets or len(set(offsets)) < len(offsets):
                return None
            ids = {low + d for d in offsets}
            if max(ids, default=low) > MAX_ID:
                return None
            lows.append(low)
            seen.append(ids)
        return cls(lows, seen)

    @property
    def newest(self) -> Ids:
        """The highest id the cursor names per table (a client cannot have seen more than the
        database holds)."""
        a, b, c = (max(s, default=low) for low, s in zip(self.lows, self.seen, strict=True))
        return a, b, c


_NUMBER = r"[0-9]{1,19}"
_PART = rf"{_NUMBER}(?:\.{_NUMBER})*"
_TEXT = re.compile(rf"{_PART}-{_PART}-{_PART}", re.ASCII)
_MAX_TEXT = 3 * (MAX_SEEN + 1) * 20


# ----------------------------------------------------------------------------- what is read


@dataclass(frozen=True)
class TailItem:
    """One row of a stream: a click, an inbox row (an event) or a delivery attempt."""

    kind: str  # "click", "event" or "delivery"
    id: int  # the row id in its table
    space_id: int
    at_ms: int
    data: dict[str, Any]

    @property
    def table(self) -> int:
        """The item's position in the cursor (``KINDS``)."""
        return KINDS.index(self.kind)


Marks = tuple[Watermark, Watermark, Watermark]


@dataclass
class Poll:
    """One poll of the reader (``Store.tail_poll``)."""

    marks: Marks  # the watermarks after this poll
    items: dict[int, list[TailItem]] = field(default_factory=dict)  # per space asked for
    spaces: frozenset[int] = frozenset()  # the spaces asked for that exist
    full: bool = False  # a table had more new ids than one poll looks at: poll again at once

    @property
    def lows(self) -> Ids:
        a, b, c = (m.low for m in self.marks)
        return a, b, c


@dataclass
class TailBatch:
    """One space's rows of an id range (``Store.tail_range``)."""

    items: list[TailItem]
    reached: Ids  # per table: every row of the space up to here was in this batch or before
