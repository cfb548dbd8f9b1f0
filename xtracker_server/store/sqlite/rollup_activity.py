"""Activity-mode counts kept beside ``report_steps`` (issue 17 §6): the tables and the triggers
that keep them, in the rollup's attached file ``reports`` (store/sqlite/reports_activity.py
reads them).

Distinct uids with step S in ``[f, t)`` are the rows of S in the window whose ``prev_ms`` (the
uid's previous event of S) is NULL or before ``f``: all the window's rows, less those whose
previous event is in the window too. So ``report_activity`` counts per bucket of ``at_ms``:

- ``TOTAL_15M``, ``TOTAL_DAY``: the rows of each 15-minute bucket (every time zone's hours start
  on one) and of each UTC day;
- ``PAIRS_15M``, ``PAIRS_DAY``: the rows per bucket of ``at_ms`` and bucket of ``prev_ms``, at the
  same level. A window on the grid subtracts the pairs whose previous bucket is in the window:
  it reads its buckets' totals and, per bucket, the pairs from the window's start on, so a
  report reads rows bounded by its window's buckets, never by history. 15-minute pairs are kept
  only for ``at_ms - prev_ms < PAIR_SPAN_MS`` (windows of 15-minute buckets are at most that
  long; longer ones are read by UTC day).

``report_activity_money`` sums the deposit rows per bucket, currency and decimals given
(``scale``, -1: no amount): rows, first deposits (``prev_ms`` NULL), the exact parts of the
amounts, and the same for the reversed ones (``report_reversed``); every sum subtracts again, so
an event taken off (an erasure, a bind that moves it) or a reversal paired later moves them.

Each count is kept per ``link_id`` of ``report_steps`` and once more under ``SPACE`` for every
link and no link (not ``UNKNOWN``): the space funnel reads one key. Triggers on the rollup's own
tables keep them, whatever changes a row (the catch-up's feed, a late click moving its uid to
a link, an erasure); they are derived like the rest of the rollup, and built again with it.
"""

from __future__ import annotations

from xtracker_wire import CANONICAL_EVENTS

__all__ = [
    "ACTIVITY_SCHEMA",
    "CLICKS_AGAIN",
    "CLICK_COUNTS",
    "COUNT_AGAIN",
    "DAY_MS",
    "KIND_MS",
    "PAIRS_15M",
    "PAIRS_DAY",
    "PAIR_SPAN_MS",
    "QUARTER_MS",
    "SPACE",
    "TOTAL_15M",
    "TOTAL_DAY",
]

QUARTER_MS = 15 * 60_000
DAY_MS = 86_400_000
#: 15-minute pairs are kept for a previous event less than this before (two days).
PAIR_SPAN_MS = 2 * DAY_MS
#: ``report_activity.kind``
TOTAL_15M, TOTAL_DAY, PAIRS_15M, PAIRS_DAY = 0, 1, 2, 3
#: The bucket length of each kind (``report_activity_money.kind``: 0 and 1 only).
KIND_MS = {TOTAL_15M: QUARTER_MS, TOTAL_DAY: DAY_MS, PAIRS_15M: QUARTER_MS, PAIRS_DAY: DAY_MS}
#: ``link_id`` of the rows of the whole space (every link and no link; not ``UNKNOWN``).
SPACE = -2

_STEPS_IN = "(" + ", ".join(f"'{e}'" for e in CANONICAL_EVENTS) + ")"


def _floor(column: str, ms: str) -> str:
    return f"({column} - (({column} % {ms}) + {ms}) % {ms})"


#: Joined to a row: its own link (``own`` 1), and ``SPACE`` for any but ``UNKNOWN`` (-1).
_LINKS = "(SELECT 1 AS own UNION ALL SELECT 0) l"


def _link(row: str) -> str:
    return f"CASE WHEN l.own THEN {row}.link_id ELSE {SPACE} END"


def _of_links(row: str) -> str:
    return f"(l.own OR {row}.link_id >= 0)"


_KINDS = " UNION ALL ".join(f"SELECT {kind} AS kind, {ms} AS ms" for kind, ms in KIND_MS.items())


def _counts(row: str, sign: int, source: str = "") -> str:
    """Add (``sign`` 1) or take off (-1) the counts of one ``report_steps`` row: NEW or OLD,
    or the alias of the query ``source`` (a FROM item and a comma)."""
    at, prev = _floor(f"{row}.at_ms", "k.ms"), _floor(f"{row}.prev_ms", "k.ms")
    return f"""
    INSERT INTO report_activity
    SELECT {row}.space_id, {_link(row)}, {row}.event, k.kind, {at},
           CASE WHEN k.kind < {PAIRS_15M} THEN 0 ELSE {prev} END, {sign}
    FROM {source}{_LINKS}, ({_KINDS}) k
    WHERE {row}.event IN {_STEPS_IN} AND {_of_links(row)}
      AND (k.kind < {PAIRS_15M} OR ({row}.prev_ms IS NOT NULL
           AND (k.kind = {PAIRS_DAY} OR {row}.at_ms - {row}.prev_ms < {PAIR_SPAN_MS})))
    ON CONFLICT DO UPDATE SET n = n + excluded.n;"""


def _reversed(space_id: str, inbox_id: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM report_reversed v WHERE v.space_id = {space_id}"
        f" AND v.deposit_id = {inbox_id})"
    )


def _money(
    row: str, sign: int, *, gross: bool = True, rev: str | None = None, source: str = ""
) -> str:
    """Add or take off one deposit row's sums: its gross part (``gross``) and, if ``rev`` (SQL)
    holds, its reversed part. ``row`` as for ``_counts``."""
    units, fraction = f"coalesce({row}.units, 0)", f"coalesce({row}.fraction, 0)"
    g = sign if gross else 0
    if rev is None:
        rev = _reversed(f"{row}.space_id", f"{row}.inbox_id")
    r = f"({sign} * ({rev}))"
    return f"""
    INSERT INTO report_activity_money
    SELECT {row}.space_id, {_link(row)}, k.kind, {_floor(f"{row}.at_ms", "k.ms")},
           coalesce({row}.currency, ''), coalesce({row}.scale, -1),
           {g}, {g} * ({row}.prev_ms IS NULL), {g} * {units}, {g} * {fraction},
           {r}, {r} * {units}, {r} * {fraction}
    FROM {source}{_LINKS}, (SELECT {TOTAL_15M} AS kind, {QUARTER_MS} AS ms
                            UNION ALL SELECT {TOTAL_DAY}, {DAY_MS}) k
    WHERE {row}.event = 'deposit' AND {_of_links(row)}
    ON CONFLICT DO UPDATE SET n = n + excluded.n, firsts = firsts + excluded.firsts,
        units = units + excluded.units, fraction = fraction + excluded.fraction,
        rn = rn + excluded.rn, r_units = r_units + excluded.r_units,
        r_fraction = r_fraction + excluded.r_fraction;"""


def _pairing(sign: int) -> str:
    """A deposit paired with its reversal (``report_reversed``: 1) or no longer (-1)."""
    row = "NEW" if sign > 0 else "OLD"
    deposit = (
        f"(SELECT * FROM report_steps INDEXED BY report_steps_uid WHERE space_id = {row}.space_id"
        f" AND uid = {row}.uid AND event = 'deposit' AND inbox_id = {row}.deposit_id) d"
    )
    return _money("d", sign, gross=False, rev="1", source=f"{deposit}, ")


ACTIVITY_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS reports.report_activity (
        space_id     INTEGER NOT NULL,
        link_id      INTEGER NOT NULL,  -- report_steps' link, or SPACE (-2)
        event        TEXT NOT NULL,
        kind         INTEGER NOT NULL,  -- TOTAL_15M, TOTAL_DAY, PAIRS_15M, PAIRS_DAY
        bucket       INTEGER NOT NULL,  -- of at_ms: its start, epoch ms
        prev_bucket  INTEGER NOT NULL,  -- pairs: the bucket of prev_ms; totals: 0
        n            INTEGER NOT NULL,
        PRIMARY KEY (space_id, link_id, event, kind, bucket, prev_bucket)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS reports.report_activity_money (
        space_id    INTEGER NOT NULL,
        link_id     INTEGER NOT NULL,
        kind        INTEGER NOT NULL,  -- TOTAL_15M, TOTAL_DAY
        bucket      INTEGER NOT NULL,
        currency    TEXT NOT NULL,     -- '': none
        scale       INTEGER NOT NULL,  -- decimals given; -1: no amount
        n           INTEGER NOT NULL,  -- deposit rows
        firsts      INTEGER NOT NULL,  -- of them, the uid's first deposit ever
        units       INTEGER NOT NULL,
        fraction    INTEGER NOT NULL,
        rn          INTEGER NOT NULL,  -- of them, reversed ones
        r_units     INTEGER NOT NULL,
        r_fraction  INTEGER NOT NULL,
        PRIMARY KEY (space_id, link_id, kind, bucket, currency, scale)
    ) WITHOUT ROWID""",
    # Clicks per bucket of the click's time, of its link (0: none) and under SPACE: kept, with
    # the report cube, by the triggers of CLICK_COUNTS on its uids' shares (cube_uids).
    """CREATE TABLE IF NOT EXISTS reports.report_clicks (
        space_id  INTEGER NOT NULL,
        link_id   INTEGER NOT NULL,
        kind      INTEGER NOT NULL,  -- TOTAL_15M, TOTAL_DAY
        bucket    INTEGER NOT NULL,
        n         INTEGER NOT NULL,
        PRIMARY KEY (space_id, link_id, kind, bucket)
    ) WITHOUT ROWID""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_added AFTER INSERT ON report_steps
    BEGIN {_counts("NEW", 1)} {_money("NEW", 1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_taken AFTER DELETE ON report_steps
    BEGIN {_counts("OLD", -1)} {_money("OLD", -1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_moved
    AFTER UPDATE OF link_id, prev_ms ON report_steps
    WHEN OLD.link_id IS NOT NEW.link_id OR OLD.prev_ms IS NOT NEW.prev_ms
    BEGIN {_counts("OLD", -1)} {_counts("NEW", 1)} {_money("OLD", -1)} {_money("NEW", 1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_reversed
    AFTER INSERT ON report_reversed BEGIN {_pairing(1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_unreversed
    AFTER DELETE ON report_reversed BEGIN {_pairing(-1)} END""",
)

#: The counts worked out again from the rows (a rollup built before them: its steps are kept).
COUNT_AGAIN = (
    "DELETE FROM reports.report_activity",
    "DELETE FROM reports.report_activity_money",
    _counts("r", 1, source="report_steps r, "),
    _money("r", 1, source="report_steps r, "),
)


def _clicks(row: str, sign: int, source: str = "") -> str:
    """Add or take off the click of one uid of the cube (``cube_uids``: its link, and its click's
    time first in its share, ``state``)."""
    at = f"json_extract({row}.state, '$[0]')"
    return f"""
    INSERT INTO report_clicks
    SELECT {row}.space_id, CASE WHEN l.own THEN coalesce({row}.link_id, 0) ELSE {SPACE} END,
           k.kind, {_floor(at, "k.ms")}, {sign}
    FROM {source}{_LINKS}, (SELECT {TOTAL_15M} AS kind, {QUARTER_MS} AS ms
                            UNION ALL SELECT {TOTAL_DAY}, {DAY_MS}) k
    WHERE true ON CONFLICT DO UPDATE SET n = n + excluded.n;"""


#: With the report cube: the triggers that keep ``report_clicks`` from its uids' shares.
CLICK_COUNTS = (
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_clicks_added AFTER INSERT ON cube_uids
    BEGIN {_clicks("NEW", 1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_clicks_taken AFTER DELETE ON cube_uids
    BEGIN {_clicks("OLD", -1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_clicks_moved
    AFTER UPDATE OF link_id, state ON cube_uids
    WHEN OLD.link_id IS NOT NEW.link_id
      OR json_extract(OLD.state, '$[0]') IS NOT json_extract(NEW.state, '$[0]')
    BEGIN {_clicks("OLD", -1)} {_clicks("NEW", 1)} END""",
)
#: ``report_clicks`` worked out again from the cube's uids.
CLICKS_AGAIN = ("DELETE FROM reports.report_clicks", _clicks("u", 1, source="cube_uids u, "))
