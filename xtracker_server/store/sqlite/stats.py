"""The planner's statistics (``sqlite_stat1``), kept current by the server.

SQLite chooses each query's plan from what ``sqlite_stat1`` says about the tables. Every hot
query is written so that its plan stays bounded without statistics (a database never
analysed), with those of a full ANALYZE of a busy tracker, with those this module takes, and
with those taken when a table had ``MIN_ROWS`` rows and grew since
(tests/server/test_query_plans.py pins them all). Statistics of a tiny table are the danger:
taken at 20 rows, they make a scan look cheaper than 500 look-ups long after the table grew.
So (docs/operations.md, "Planner statistics"):

- a table gets statistics only once it has ``MIN_ROWS`` rows; below, it has none;
- when the store opens, before any other connection: every table of ``MIN_ROWS`` rows or more
  is analysed;
- every ``housekeeping.STATS_EVERY_S``, in the writer (whose connection runs the hot writes,
  which is what ``PRAGMA optimize`` looks at) and on the report rollup's connection, the tables
  that need it (``tables_to_analyze``): those without statistics that reached ``MIN_ROWS``,
  and those ``PRAGMA optimize`` names (SQLite 3.40: the tables this connection queried in a way
  their statistics decided that grew about 25-fold since they were last analysed; later
  versions also look at tables that shrank).

Each ``ANALYZE`` reads about ``ANALYSIS_LIMIT`` entries of each index (``PRAGMA
analysis_limit``), so it takes milliseconds whatever the size of the table (a full one of a
2-million-event database takes 19 s, holding the write lock). A connection loads statistics
when it opens (or when the schema changes): the store reopens its readers after a refresh
that analysed something.
"""

from __future__ import annotations

import re
import sqlite3

__all__ = ["ANALYSIS_LIMIT", "MIN_ROWS", "refresh_stats", "tables_to_analyze"]

#: Rows of each index an ANALYZE looks at (SQLite recommends 100 to 1000).
ANALYSIS_LIMIT = 1000
#: A table smaller than this gets no statistics (the planner's guesses are right for it).
MIN_ROWS = 10_000

_OPTIMIZE_LINE = re.compile(r'^ANALYZE "(?:[^"]|"")+"\."(?P<table>(?:[^"]|"")+)"$')


def tables_to_analyze(conn: sqlite3.Connection, schema: str = "main") -> list[str]:
    """The tables of ``schema`` whose statistics are missing or stale (see the module's
    docstring), those under ``MIN_ROWS`` rows left out."""
    analysed: set[str] = set()
    if _has_stat1(conn, schema):
        analysed = {r[0] for r in conn.execute(f"SELECT tbl FROM {schema}.sqlite_stat1")}
    tables = set(_tables(conn, schema)) - analysed
    # Debug mode (0x01): names the tables PRAGMA optimize would analyse, without analysing.
    for (line,) in conn.execute(f"PRAGMA {schema}.optimize(0x03)"):
        m = _OPTIMIZE_LINE.match(line)
        if m:
            tables.add(m["table"].replace('""', '"'))
    return sorted(t for t in tables if _big(conn, schema, t))


def refresh_stats(
    conn: sqlite3.Connection, schema: str = "main", *, every_table: bool = False
) -> list[str]:
    """Analyse the tables of ``schema`` that need it (``tables_to_analyze``), or with
    ``every_table`` each one of ``MIN_ROWS`` rows or more; a bounded amount of work each.
    Returns their names."""
    if every_table:
        tables = [t for t in _tables(conn, schema) if _big(conn, schema, t)]
    else:
        tables = tables_to_analyze(conn, schema)
    if tables:
        conn.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        for table in tables:
            conn.execute(f"ANALYZE {schema}.{_quoted(table)}")
    return tables


def _has_stat1(conn: sqlite3.Connection, schema: str) -> bool:
    found = conn.execute(
        f"SELECT 1 FROM {schema}.sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat1'"
    )
    return found.fetchone() is not None


def _tables(conn: sqlite3.Connection, schema: str) -> list[str]:
    names = conn.execute(
        f"SELECT name FROM {schema}.sqlite_schema WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    )
    return [t for (t,) in names.fetchall()]


def _big(conn: sqlite3.Connection, schema: str, table: str) -> bool:
    """Whether the table has ``MIN_ROWS`` rows (counting no further)."""
    count = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {schema}.{_quoted(table)} LIMIT {MIN_ROWS})"
    )
    return int(count.fetchone()[0]) >= MIN_ROWS


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
