"""The reads behind the live stream (admin/stream.py) and ``xtracker tail``: the clicks, inbox
rows and delivery attempts committed after a point, by row id.

- ``tail_poll``: one poll of the server's one reader, for every space that has a stream open:
  the rows above each table's watermark and the rows of its gaps (``domain.tail``), of all
  spaces (every id matters for the gaps), handed out per space, plus which of those spaces still
  exist (a space marked deleted does not: its streams end at once). One read transaction, so
  one consistent snapshot, whatever the number of streams.
- ``tail_range``: one space's rows in an id range, for a stream that resumes from a cursor
  (bounded work per call).

Each poll or range looks at no more than ``TAIL_SCAN`` ids per table, so a busy neighbour cannot
make one read slow; the rest is read by the next one.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from xtracker_server.domain.tail import KINDS, Ids, Marks, Poll, TailBatch, TailItem, Watermark

__all__ = [
    "INIT_WINDOW",
    "TAIL_SCAN",
    "Marks",
    "Poll",
    "TailBatch",
    "TailItem",
    "tail_poll",
    "tail_range",
    "tail_top",
]

#: Ids looked at per table in one poll or range read.
TAIL_SCAN = 5000
#: A reader that starts waits for the ids missing among the newest this many of each table
#: (transactions that may still be committing).
INIT_WINDOW = 1000


def _click(r: Sequence[Any]) -> dict[str, Any]:
    return {"id": r[0], "uid": r[3], "link": r[4], "source": r[5], "country": r[6],
            "campaign_name": r[7], "fbclid": bool(r[8]), "created_ms": r[2]}  # fmt: skip


def _event(r: Sequence[Any]) -> dict[str, Any]:
    return {"id": str(r[0]), "event": r[3], "uid": r[4], "tg_id": r[5], "value": r[6],
            "currency": r[7], "occurred_at_ms": r[8], "received_ms": r[2], "source": r[9],
            "eid": r[10], "attributed": r[4] is not None, "test": bool(r[11])}  # fmt: skip


def _delivery(r: Sequence[Any]) -> dict[str, Any]:
    return {"id": r[0], "delivery_id": r[3], "destination_id": r[4], "destination": r[5],
            "event": r[6], "outcome": r[7], "status_code": r[8], "latency_ms": r[9],
            "error": r[10], "status": r[11], "at_ms": r[2]}  # fmt: skip


@dataclass(frozen=True)
class _Table:
    name: str
    select: str  # every row as (id, space_id, at_ms, ...), the table aliased ``r``
    data: Callable[[Sequence[Any]], dict[str, Any]]


_TABLES = (
    _Table(
        "clicks",
        "SELECT r.id, r.space_id, r.created_ms, r.uid, l.slug, r.source, r.country,"
        " r.campaign_name, r.fbclid IS NOT NULL FROM clicks r"
        " LEFT JOIN links l ON l.id = r.link_id",
        _click,
    ),
    _Table(
        "inbox",
        "SELECT r.id, r.space_id, r.received_ms, r.event, r.uid, r.tg_id, r.value, r.currency,"
        " r.occurred_at_ms, r.source, r.eid, r.test FROM inbox r",
        _event,
    ),
    _Table(
        "delivery_attempts",
        "SELECT r.id, r.space_id, r.at_ms, r.delivery_id, d.destination_id, t.name, d.event_name,"
        " r.outcome, r.status_code, r.latency_ms, r.error, d.status FROM delivery_attempts r"
        " LEFT JOIN deliveries d ON d.id = r.delivery_id"
        " LEFT JOIN destinations t ON t.id = d.destination_id",
        _delivery,
    ),
)


def _item(kind: int, row: Sequence[Any]) -> TailItem:
    return TailItem(KINDS[kind], row[0], row[1], row[2], _TABLES[kind].data(row))


def _in_time_order(per_table: Iterable[list[TailItem]]) -> list[TailItem]:
    """The items of the three tables by time (clicks first on a tie), each table's in the order
    given (its id order, which the cursors rely on)."""
    return list(heapq.merge(*per_table, key=lambda i: (i.at_ms, i.table)))


def tail_top(conn: sqlite3.Connection) -> Ids:
    """The newest row id of each table."""
    row = conn.execute(
        "SELECT (SELECT max(id) FROM clicks), (SELECT max(id) FROM inbox),"
        " (SELECT max(id) FROM delivery_attempts)"
    ).fetchone()
    return row[0] or 0, row[1] or 0, row[2] or 0


# ----------------------------------------------------------------------------- the reader


def tail_poll(
    conn: sqlite3.Connection, marks: Marks | None, spaces: Collection[int], now: float
) -> Poll:
    """The rows committed since ``marks`` (None: start at "now", reading nothing), of the
    ``spaces`` asked for, with the watermarks to poll from next. ``now``: monotonic seconds."""
    conn.execute("BEGIN")
    try:
        top = tail_top(conn)
        if marks is None:
            return Poll(_start(conn, top, now), spaces=_existing(conn, spaces))
        poll = Poll(marks, spaces=_existing(conn, spaces))
        per_space: dict[int, list[list[TailItem]]] = defaultdict(lambda: [[], [], []])
        new_marks = []
        for kind, (mark, newest) in enumerate(zip(marks, top, strict=True)):
            scanned_to = min(newest, mark.high + TAIL_SCAN)
            poll.full = poll.full or scanned_to < newest
            if scanned_to <= mark.high and not mark.gaps:
                new_marks.append(mark)
                continue
            rows = _rows(conn, kind, "r.id > ? AND r.id <= ?", (mark.high, scanned_to))
            if mark.gaps:
                gaps = sorted(mark.gaps)
                rows += _rows(conn, kind, f"r.id IN ({', '.join('?' * len(gaps))})", gaps)
            rows.sort(key=lambda r: int(r[0]))
            for row in rows:
                if row[1] in poll.spaces:
                    per_space[row[1]][kind].append(_item(kind, row))
            new_marks.append(mark.advance((r[0] for r in rows), scanned_to, now))
    finally:
        conn.execute("COMMIT")
    a, b, c = new_marks
    poll.marks = (a, b, c)
    poll.items = {space: _in_time_order(tables) for space, tables in per_space.items()}
    return poll


def _rows(conn: sqlite3.Connection, kind: int, where: str, args: Sequence[Any]) -> list[Any]:
    return conn.execute(f"{_TABLES[kind].select} WHERE {where}", args).fetchall()


def _start(conn: sqlite3.Connection, top: Ids, now: float) -> Marks:
    """Watermarks at ``top``, waiting for the ids missing among the newest of each table."""
    marks = []
    for table, newest in zip(_TABLES, top, strict=True):
        start = max(0, newest - INIT_WINDOW)
        present = conn.execute(
            f"SELECT id FROM {table.name} WHERE id > ? AND id <= ?", (start, newest)
        )
        marks.append(Watermark(start).advance((r[0] for r in present), newest, now))
    a, b, c = marks
    return a, b, c


def _existing(conn: sqlite3.Connection, spaces: Collection[int]) -> frozenset[int]:
    if not spaces:
        return frozenset()
    ids = sorted(spaces)
    found = conn.execute(
        f"SELECT id FROM spaces WHERE id IN ({', '.join('?' * len(ids))}) AND deleted_ms IS NULL",
        ids,
    )
    return frozenset(r[0] for r in found)


# ----------------------------------------------------------------------------- one space


def tail_range(
    conn: sqlite3.Connection, space_id: int, after: Ids, upto: Ids, limit: int = 500
) -> TailBatch:
    """The space's rows with ids in ``(after, upto]`` per table, at most ``limit`` per table,
    oldest first; read on from ``reached``. One read transaction."""
    conn.execute("BEGIN")
    try:
        per_table: list[list[TailItem]] = []
        reached = []
        for kind, (lo, hi) in enumerate(zip(after, upto, strict=True)):
            stop = min(hi, lo + TAIL_SCAN)
            # The id range is at most TAIL_SCAN rows; "+" keeps the planner from walking the
            # whole space through a space_id index instead (its guess without statistics).
            where = "r.id > ? AND r.id <= ? AND +r.space_id = ? ORDER BY r.id LIMIT ?"
            rows = _rows(conn, kind, where, (lo, stop, space_id, limit)) if stop > lo else []
            per_table.append([_item(kind, r) for r in rows])
            reached.append(rows[-1][0] if len(rows) >= limit else max(lo, stop))
    finally:
        conn.execute("COMMIT")
    a, b, c = reached
    return TailBatch(_in_time_order(per_table), (a, b, c))
