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

from tests.databases import migrated
from xtracker_server.store.sqlite.db import open_db
from xtracker_server.store.sqlite.rollup import with_rollup

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
#: The report rollup's table (store/sqlite/rollup.py, the attached ``reports`` file): a row per
#: attributed event.
REPORTS_STATS: dict[str, int] = {"report_steps": BIG}
#: Tables that are small whatever happens (a walk over them is not a growth problem).
SMALL = {"spaces": 10, "credentials": 50, "links": 200, "destinations": 5, "postback_aliases": 20}


def _index_stat(rows: int, columns: list[str], sample: int | None = None) -> str:
    """A stat1 string for an index: ``space_id`` selects everything (one space), a uid or a
    tg_id a few rows, an id, eid, dedup key or secret one row, anything else a tenth. With
    ``sample``, what ``ANALYZE`` writes under ``PRAGMA analysis_limit=<sample>``: it reads
    that many entries of the index, so no value seems to hold more rows than that."""
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
    if sample is not None:
        per_prefix = [min(n, sample + 1) for n in per_prefix]
    return " ".join(str(n) for n in [rows, *per_prefix])


def inject_stats(
    conn: sqlite3.Connection,
    sizes: dict[str, int] | None = None,
    *,
    schema: str = "main",
    sample: int | None = None,
    skewed: dict[str, str] | None = None,
) -> None:
    """Write ``sqlite_stat1`` rows of ``schema`` (``main``, or an attached file) saying each
    table has the given size (``STATS`` and ``SMALL`` by default), as a full ``ANALYZE``
    would, or one that reads ``sample`` entries of each index (``_index_stat``), and make the
    connection's planner read them. ``skewed``: the stat of the indexes it names, as written
    (a sample whose entries were all of one value)."""
    sizes = {**SMALL, **STATS} if sizes is None else sizes
    conn.execute(f"ANALYZE {schema}")  # creates sqlite_stat1 (empty tables give it no rows)
    conn.execute(f"DELETE FROM {schema}.sqlite_stat1")
    for table, rows in sizes.items():
        for (index,) in conn.execute(
            f"SELECT name FROM {schema}.sqlite_master WHERE type = 'index' AND tbl_name = ?",
            (table,),
        ).fetchall():
            columns = [r[2] for r in conn.execute(f"PRAGMA {schema}.index_info({index})") if r[2]]
            conn.execute(
                f"INSERT INTO {schema}.sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)",
                (table, index, _index_stat(rows, columns, sample)),
            )
        conn.execute(
            f"INSERT INTO {schema}.sqlite_stat1 (tbl, idx, stat) VALUES (?, NULL, ?)",
            (table, str(rows)),
        )
    for index, stat in (skewed or {}).items():
        conn.execute(f"UPDATE {schema}.sqlite_stat1 SET stat = ? WHERE idx = ?", (stat, index))
    conn.execute(f"ANALYZE {schema}.sqlite_schema")  # reload the statistics


def big_database(
    path: Path,
    *,
    stats: bool = True,
    sizes: dict[str, int] | None = None,
    sample: int | None = None,
    skewed: dict[str, str] | None = None,
) -> sqlite3.Connection:
    """A migrated database file whose statistics describe a busy tracker (``STATS``), or,
    with ``stats=False``, one never analysed: the planner's guesses, which a database that
    grew between two ``ANALYZE`` runs gets. A hot query must have a good plan in both.

    ``sizes`` replaces the sizes of the tables it names (statistics taken when the database
    was smaller); ``sample`` gives the statistics of an ``ANALYZE`` run under ``PRAGMA
    analysis_limit=<sample>`` (``_index_stat``), ``skewed`` some of them as written. The report
    rollup is attached (``reports``, with the trigger that builds it), with statistics of its
    own (``REPORTS_STATS``)."""
    conn = with_rollup(open_db(str(migrated(path))), str(path))
    if stats:
        changed = sizes or {}
        main = {t: changed.get(t, n) for t, n in {**SMALL, **STATS}.items()}
        rollup = {t: changed.get(t, n) for t, n in REPORTS_STATS.items()}
        inject_stats(conn, main, sample=sample, skewed=skewed)
        inject_stats(conn, rollup, schema="reports", sample=sample)
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


def trigger_plans(
    conn: sqlite3.Connection, name: str, row: dict[str, Any] | None = None
) -> list[Planned]:
    """The plans of what the trigger ``name`` runs (``EXPLAIN QUERY PLAN`` of the statement
    that fires it shows none of it): its ``WHEN`` condition and each statement of its body,
    ``NEW.x`` and ``OLD.x`` replaced by the values of ``row`` (NULL for a column not given)."""
    found = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?"
        " UNION ALL SELECT sql FROM sqlite_temp_master WHERE type = 'trigger' AND name = ?",
        (name, name),
    ).fetchone()
    if found is None:
        raise LookupError(f"no trigger {name!r}")
    m = re.search(
        r"(?:\bWHEN\b(?P<when>.*?))?\bBEGIN\b(?P<body>.*)\bEND\s*$", found[0], re.I | re.S
    )
    if m is None:
        raise ValueError(f"cannot read the trigger {name!r}")
    values = row or {}

    def bound(sql: str) -> str:
        return re.sub(
            r"\b(?:NEW|OLD)\.(\w+)", lambda v: _literal(values.get(v.group(1))), sql, flags=re.I
        )

    statements = [f"SELECT {m['when'].strip()}"] if m["when"] else []
    pending = ""
    for chunk in m["body"].split(";"):
        pending += chunk + ";"
        if sqlite3.complete_statement(pending):
            if pending[:-1].strip():
                statements.append(pending[:-1].strip())
            pending = ""
    return [Planned(sql, explain(conn, sql)) for sql in map(bound, statements)]


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"x'{value.hex()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(int(value))


#: An index, or the primary key of a table without rowid (the report rollup's).
_INDEX = r"(?:COVERING )?(?:INDEX \w+|PRIMARY KEY)"
_WALK = re.compile(
    rf"^(?:SCAN (?:\w+\.)?(?P<scan>\w+)(?! USING {_INDEX} \(.*\))"
    rf"|SEARCH (?:\w+\.)?(?P<search>\w+) USING {_INDEX} \((?P<cons>.*)\))"
)


def _table_of(tables: set[str], sql: str, name: str) -> str:
    """The table a plan line's name stands for: itself, or the table it aliases in ``sql``."""
    if name in tables:
        return name
    m = re.search(rf"\b(?:FROM|JOIN)\s+(?:\w+\.)?(\w+)\s+(?:AS\s+)?{re.escape(name)}\b", sql, re.I)
    return m.group(1) if m else name


#: Columns whose equality does not narrow a busy space (one space, one destination, a few
#: values).
UNSELECTIVE = (
    "space_id", "destination_id", "enabled", "status", "kind", "event", "outcome", "reason",
    "currency", "source",
)  # fmt: skip


def whole_space_walks(planned: list[Planned], big: set[str] | None = None) -> list[str]:
    """The plan lines that read a big table whole (``SCAN``) or all of one space of it (an
    index search constrained by ``space_id`` alone, or by ``space_id`` and a range), with the
    statement they belong to. An ordered walk cut short by a ``LIMIT`` reads a bounded number
    of rows although it looks like a walk here: pin such a plan explicitly instead."""
    big = set(STATS) | set(REPORTS_STATS) if big is None else big
    conn_tables = set(STATS) | set(REPORTS_STATS) | set(SMALL)
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
