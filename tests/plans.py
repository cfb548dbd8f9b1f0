"""Query plans on a database SQLite believes is large (issue 14): the plan tests pin the
plan of every hot query without building millions of rows.

``big_database`` creates a real, migrated SQLite file and writes ``sqlite_stat1`` statistics
for the shape of a busy tracker: one space holding 10 million events and 3 million clicks,
a uid with a handful of rows, a few destinations and links. The planner then chooses the plan
it would choose in production. ``plans_of`` runs a real store function on that file, captures
every statement it executes (with its parameters bound) and returns each statement with its
``EXPLAIN QUERY PLAN``. ``whole_space_walks`` names the plan lines that read a big table
whole, or all of one space of it: the plans a hot query must never have.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xtracker_server.store.db import open_db

#: Rows per table in the statistics: a year of a busy space.
BIG = 10_000_000
#: ``sqlite_stat1`` rows: table, index, "rows [rows per distinct value of each prefix]".
#: One space holds every row (the worst case: ``space_id`` alone selects everything).
STATS: dict[str, int] = {
    "inbox": BIG,
    "clicks": 3_000_000,
    "binds": 2_000_000,
    "deliveries": BIG,
    "delivery_attempts": BIG,
    "postback_log": 5_000_000,
    "report_backlog": 1_000_000,
    "unrecorded_clicks": 100_000,
}
#: Tables that are small whatever happens (a walk over them is not a growth problem).
SMALL = {"spaces": 10, "credentials": 50, "links": 200, "destinations": 5, "postback_aliases": 20}


def _index_stat(rows: int, columns: list[str]) -> str:
    """A stat1 string for an index: ``space_id`` selects everything (one space), a uid or a
    tg_id a few rows, an id, eid, dedup key or secret one row, anything else a tenth."""
    per_prefix = []
    current = rows
    for col in columns:
        if col in ("space_id", "enabled", "kind", "status", "destination_id"):
            current = current  # one space, one destination: selects all of the previous
        elif col in ("uid", "tg_id", "inbox_id", "delivery_id"):
            current = min(current, 4)
        elif col in ("id", "eid", "dedup_key", "event_id", "secret_hash", "slug", "token_hash"):
            current = 1
        else:
            current = max(1, current // 10)
        per_prefix.append(max(1, current))
    return " ".join(str(n) for n in [rows, *per_prefix])


def inject_stats(conn: sqlite3.Connection, sizes: dict[str, int] | None = None) -> None:
    """Write ``sqlite_stat1`` rows saying each table has the given size (``STATS`` and
    ``SMALL`` by default) and make the connection's planner read them."""
    sizes = {**SMALL, **STATS} if sizes is None else sizes
    conn.execute("ANALYZE")  # creates sqlite_stat1 (empty tables give it no rows)
    conn.execute("DELETE FROM sqlite_stat1")
    for table, rows in sizes.items():
        for (index,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
        ).fetchall():
            columns = [r[2] for r in conn.execute(f"PRAGMA index_info({index})") if r[2]]
            conn.execute(
                "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)",
                (table, index, _index_stat(rows, columns)),
            )
        conn.execute(
            "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, NULL, ?)", (table, str(rows))
        )
    conn.execute("ANALYZE sqlite_schema")  # reload the statistics


def big_database(path: Path, *, stats: bool = True) -> sqlite3.Connection:
    """A migrated database file whose statistics describe a busy tracker (``STATS``), or,
    with ``stats=False``, one never analysed: the planner's guesses, which a database that
    grew between two ``ANALYZE`` runs gets. A hot query must have a good plan in both."""
    conn = open_db(str(path))
    if stats:
        inject_stats(conn)
    return conn


@dataclass(frozen=True)
class Planned:
    sql: str
    plan: list[str]

    def __str__(self) -> str:
        return self.sql + "\n  " + "\n  ".join(self.plan)


def explain(conn: sqlite3.Connection, sql: str) -> list[str]:
    """The ``EXPLAIN QUERY PLAN`` lines of one statement with its parameters bound."""
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]


_SKIP = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|ANALYZE)\b", re.I)


def plans_of(conn: sqlite3.Connection, call: Callable[[sqlite3.Connection], Any]) -> list[Planned]:
    """Run ``call(conn)`` (a real store function) and return the plan of every statement it
    executed, in order."""
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        call(conn)
    finally:
        conn.set_trace_callback(None)
    return [Planned(sql, explain(conn, sql)) for sql in statements if not _SKIP.match(sql)]


_WALK = re.compile(
    r"^(?:SCAN (?P<scan>\w+)(?! USING (?:COVERING )?INDEX \w+ \(.*\))"
    r"|SEARCH (?P<search>\w+) USING (?:COVERING )?INDEX \w+ \((?P<cons>[^)]*)\))"
)


def _table_of(tables: set[str], sql: str, name: str) -> str:
    """The table a plan line's name stands for: itself, or the table it aliases in ``sql``."""
    if name in tables:
        return name
    m = re.search(rf"\b(?:FROM|JOIN)\s+(\w+)\s+(?:AS\s+)?{re.escape(name)}\b", sql, re.I)
    return m.group(1) if m else name


#: Columns whose equality does not narrow a busy space (one space, one destination).
UNSELECTIVE = ("space_id", "destination_id", "enabled", "status", "kind")


def whole_space_walks(planned: list[Planned], big: set[str] | None = None) -> list[str]:
    """The plan lines that read a big table whole (``SCAN``) or all of one space of it (an
    index search constrained by ``space_id`` alone, or by ``space_id`` and a range), with the
    statement they belong to. An ordered walk cut short by a ``LIMIT`` reads a bounded number
    of rows although it looks like a walk here: pin such a plan explicitly instead."""
    big = set(STATS) if big is None else big
    conn_tables = set(STATS) | set(SMALL)
    found = []
    for p in planned:
        for line in p.plan:
            m = _WALK.match(line.strip())
            if not m:
                continue
            table = _table_of(conn_tables, p.sql, m["scan"] or m["search"])
            if table not in big:
                continue
            if m["scan"]:
                found.append(f"{line.strip()}  <-  {p.sql}")
                continue
            constraints = [c.strip() for c in m["cons"].split(" AND ")]
            equalities = [c for c in constraints if c.endswith("=?") and c[:-2] not in UNSELECTIVE]
            if not equalities:
                found.append(f"{line.strip()}  <-  {p.sql}")
    return found
