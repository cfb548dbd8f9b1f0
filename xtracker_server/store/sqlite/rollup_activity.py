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

``report_clicks`` counts the clicks per bucket, with the report cube (whose uids' shares,
``cube_uids``, hold each uid's click).

Each count is kept per ``link_id`` of ``report_steps`` and once more under ``SPACE`` for every
link and no link (not ``UNKNOWN``): the space funnel reads one key. Triggers on the rollup's own
tables log every change of a row (``activity_log``, ``clicks_log``: the catch-up's feed, a late
click moving its uid to a link, an erasure, a reversal paired), and each round of the catch-up
folds the log into the counts before it commits (``FOLD``: one grouped upsert per table, rather
than one per event and bucket). They are derived like the rest of the rollup, built again with
it.
"""

from __future__ import annotations

from xtracker_wire import CANONICAL_EVENTS, MAX_VALUE_DECIMALS

__all__ = [
    "ACTIVITY_SCHEMA",
    "ACTIVITY_TABLES",
    "CLICKS_AGAIN",
    "CLICK_COUNTS",
    "COUNT_AGAIN",
    "DAY_MS",
    "FOLD",
    "KIND_MS",
    "LOOSE",
    "PAIRS_15M",
    "PAIRS_DAY",
    "PAIR_SPAN_MS",
    "QUARTER_MS",
    "SPACE",
    "STEPS_IN",
    "TOTAL_15M",
    "TOTAL_DAY",
    "amount_parts",
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
#: ``link_id`` of the counts of events without a uid (store/sqlite/rollup_loose.py).
LOOSE = -3

STEPS_IN = "(" + ", ".join(f"'{e}'" for e in CANONICAL_EVENTS) + ")"


def amount_parts(value: str) -> tuple[str, str, str]:
    """SQL for the exact parts of the amount in the column ``value`` (fixed-point text with at
    most ``MAX_VALUE_DECIMALS`` decimals): its integer part, its fraction as that many digits,
    and how many decimals it was given. Sums of these are exact (``sum_from_parts``)."""
    dot = f"instr({value} || '.', '.')"
    digits = MAX_VALUE_DECIMALS
    return (
        f"CAST(substr({value}, 1, {dot} - 1) AS INTEGER)",
        f"CAST(substr(substr({value}, {dot} + 1) || '{'0' * digits}', 1, {digits}) AS INTEGER)",
        f"max(length({value}) - {dot}, 0)",
    )


def _floor(column: str, ms: str) -> str:
    return f"({column} - (({column} % {ms}) + {ms}) % {ms})"


#: Joined to a row: its own link (``own`` 1), and ``SPACE`` for any but ``UNKNOWN`` (-1).
_LINKS = "(SELECT 1 AS own UNION ALL SELECT 0) l"
_LINK = f"CASE WHEN l.own THEN a.link_id ELSE {SPACE} END"
_OF_LINKS = "(l.own OR a.link_id >= 0)"
_KINDS = " UNION ALL ".join(f"SELECT {kind} AS kind, {ms} AS ms" for kind, ms in KIND_MS.items())


def _fold_counts(log: str) -> str:
    """Add the rows ``a`` of ``log`` (``activity_log``'s columns) to ``report_activity``."""
    at, prev = _floor("a.at_ms", "k.ms"), _floor("a.prev_ms", "k.ms")
    return f"""INSERT INTO report_activity
    SELECT space_id, link, event, kind, bucket, prev_bucket, sum(n) FROM (
        SELECT a.space_id AS space_id, {_LINK} AS link, a.event AS event, k.kind AS kind,
               {at} AS bucket, CASE WHEN k.kind < {PAIRS_15M} THEN 0 ELSE {prev} END
               AS prev_bucket, a.g AS n
        FROM {log} a, {_LINKS}, ({_KINDS}) k
        WHERE a.g != 0 AND {_OF_LINKS} AND (k.kind < {PAIRS_15M} OR (a.prev_ms IS NOT NULL
              AND (k.kind = {PAIRS_DAY} OR a.at_ms - a.prev_ms < {PAIR_SPAN_MS}))))
    WHERE true GROUP BY space_id, link, event, kind, bucket, prev_bucket
    ON CONFLICT DO UPDATE SET n = n + excluded.n"""


_MONEY_KINDS = (
    f"(SELECT {TOTAL_15M} AS kind, {QUARTER_MS} AS ms UNION ALL SELECT {TOTAL_DAY}, {DAY_MS})"
)
_SUMS = ("n", "firsts", "units", "fraction", "rn", "r_units", "r_fraction")


def _fold_money(log: str) -> str:
    """Add the deposit rows ``a`` of ``log`` to ``report_activity_money``: their gross part
    (``g``: 1, -1 taken off, 0 none) and their reversed part (``r``)."""
    units, fraction = "coalesce(a.units, 0)", "coalesce(a.fraction, 0)"
    parts = ("a.g", "a.g * (a.prev_ms IS NULL)", f"a.g * {units}", f"a.g * {fraction}", "a.r",
             f"a.r * {units}", f"a.r * {fraction}")  # fmt: skip
    columns = ", ".join(f"{sql} AS {name}" for sql, name in zip(parts, _SUMS, strict=True))
    return f"""INSERT INTO report_activity_money
    SELECT space_id, link, kind, bucket, currency, scale, {", ".join(f"sum({c})" for c in _SUMS)}
    FROM (
        SELECT a.space_id AS space_id, {_LINK} AS link, k.kind AS kind,
               {_floor("a.at_ms", "k.ms")} AS bucket, coalesce(a.currency, '') AS currency,
               coalesce(a.scale, -1) AS scale, {columns}
        FROM {log} a, {_LINKS}, {_MONEY_KINDS} k
        WHERE a.event = 'deposit' AND {_OF_LINKS})
    WHERE true GROUP BY space_id, link, kind, bucket, currency, scale
    ON CONFLICT DO UPDATE SET {", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)}"""


def _fold_clicks(log: str) -> str:
    """Add the clicks ``a`` of ``log`` (``clicks_log``'s columns) to ``report_clicks``."""
    return f"""INSERT INTO report_clicks
    SELECT space_id, link, kind, bucket, sum(n) FROM (
        SELECT a.space_id AS space_id, {_LINK} AS link, k.kind AS kind,
               {_floor("a.at_ms", "k.ms")} AS bucket, a.n AS n
        FROM {log} a, {_LINKS}, {_MONEY_KINDS} k)
    WHERE true GROUP BY space_id, link, kind, bucket
    ON CONFLICT DO UPDATE SET n = n + excluded.n"""


def _reversed(row: str) -> str:
    return (
        f"({row}.event = 'deposit' AND EXISTS (SELECT 1 FROM report_reversed v"
        f" WHERE v.space_id = {row}.space_id AND v.deposit_id = {row}.inbox_id))"
    )


def _log(row: str, sign: int) -> str:
    """Log a ``report_steps`` row (NEW or OLD) added (``sign`` 1) or taken off (-1)."""
    return f"""INSERT INTO activity_log SELECT {row}.space_id, {row}.link_id, {row}.event,
    {row}.at_ms, {row}.prev_ms, {row}.currency, {row}.scale, {row}.units, {row}.fraction,
    {sign}, {sign} * {_reversed(row)} WHERE {row}.event IN {STEPS_IN};"""


def _log_pairing(sign: int) -> str:
    """Log a deposit paired with its reversal (``report_reversed``: 1) or no longer (-1)."""
    row = "NEW" if sign > 0 else "OLD"
    return f"""INSERT INTO activity_log SELECT d.space_id, d.link_id, d.event, d.at_ms,
    d.prev_ms, d.currency, d.scale, d.units, d.fraction, 0, {sign}
    FROM report_steps d INDEXED BY report_steps_uid WHERE d.space_id = {row}.space_id
    AND d.uid = {row}.uid AND d.event = 'deposit' AND d.inbox_id = {row}.deposit_id;"""


def _log_click(row: str, sign: int) -> str:
    """Log a uid of the cube (``cube_uids``: its link, and its click's time first in its share)."""
    return f"""INSERT INTO clicks_log VALUES ({row}.space_id, coalesce({row}.link_id, 0),
    json_extract({row}.state, '$[0]'), {sign});"""


#: The tables of the counts (dropped when the rollup is built again).
ACTIVITY_TABLES = ("report_activity", "report_activity_money", "report_clicks", "activity_log",
                   "clicks_log")  # fmt: skip

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
    # the report cube, from its uids' shares (cube_uids: CLICK_COUNTS).
    """CREATE TABLE IF NOT EXISTS reports.report_clicks (
        space_id  INTEGER NOT NULL,
        link_id   INTEGER NOT NULL,
        kind      INTEGER NOT NULL,  -- TOTAL_15M, TOTAL_DAY
        bucket    INTEGER NOT NULL,
        n         INTEGER NOT NULL,
        PRIMARY KEY (space_id, link_id, kind, bucket)
    ) WITHOUT ROWID""",
    # The changes of a round not folded into the counts yet (``FOLD`` empties them): rows of
    # report_steps with how much of them is added (g: gross, r: reversed; -1 taken off).
    """CREATE TABLE IF NOT EXISTS reports.activity_log (
        space_id INTEGER, link_id INTEGER, event TEXT, at_ms INTEGER, prev_ms INTEGER,
        currency TEXT, scale INTEGER, units INTEGER, fraction INTEGER, g INTEGER, r INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS reports.clicks_log (
        space_id INTEGER, link_id INTEGER, at_ms INTEGER, n INTEGER
    )""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_added AFTER INSERT ON report_steps
    BEGIN {_log("NEW", 1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_taken AFTER DELETE ON report_steps
    BEGIN {_log("OLD", -1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_moved
    AFTER UPDATE OF link_id, prev_ms ON report_steps
    WHEN OLD.link_id IS NOT NEW.link_id OR OLD.prev_ms IS NOT NEW.prev_ms
    BEGIN {_log("OLD", -1)} {_log("NEW", 1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_reversed
    AFTER INSERT ON report_reversed BEGIN {_log_pairing(1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_activity_unreversed
    AFTER DELETE ON report_reversed BEGIN {_log_pairing(-1)} END""",
)

#: Run by every round of the catch-up before it commits: the logged changes into the counts.
FOLD = (
    _fold_counts("activity_log"),
    _fold_money("activity_log"),
    _fold_clicks("clicks_log"),
    "DELETE FROM activity_log",
    "DELETE FROM clicks_log",
)

#: The counts worked out again from the rows (a rollup built before them: its steps are kept),
#: those of the events without a uid (``report_loose``) with them.
_ROWS = (
    "(SELECT space_id, link_id, event, at_ms, prev_ms, currency, scale, units, fraction, 1 AS g,"
    f" {_reversed('s')} AS r FROM report_steps s WHERE event IN {STEPS_IN} UNION ALL"
    f" SELECT space_id, {LOOSE}, event, at_ms, NULL, currency, scale, units, fraction, 1, 0"
    " FROM report_loose)"
)
COUNT_AGAIN = (
    "DELETE FROM reports.report_activity",
    "DELETE FROM reports.report_activity_money",
    _fold_counts(_ROWS),
    _fold_money(_ROWS),
)

#: With the report cube: the triggers that log the clicks of its uids' shares.
CLICK_COUNTS = (
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_clicks_added AFTER INSERT ON cube_uids
    BEGIN {_log_click("NEW", 1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_clicks_taken AFTER DELETE ON cube_uids
    BEGIN {_log_click("OLD", -1)} END""",
    f"""CREATE TRIGGER IF NOT EXISTS reports.report_clicks_moved
    AFTER UPDATE OF link_id, state ON cube_uids
    WHEN OLD.link_id IS NOT NEW.link_id
      OR json_extract(OLD.state, '$[0]') IS NOT json_extract(NEW.state, '$[0]')
    BEGIN {_log_click("OLD", -1)} {_log_click("NEW", 1)} END""",
)
#: ``report_clicks`` worked out again from the cube's uids.
CLICKS_AGAIN = (
    "DELETE FROM reports.report_clicks",
    _fold_clicks(
        "(SELECT space_id, coalesce(link_id, 0) AS link_id,"
        " json_extract(state, '$[0]') AS at_ms, 1 AS n FROM cube_uids)"
    ),
)
