"""The report cube's tables (issue 17 §6), in the rollup's attached file ``reports``: what
store/sqlite/cube_feed.py keeps up to date and store/sqlite/cube.py reads.

A *cube row* sums the cohort of the clicks of one bucket of time and one grouping key: its
clicks, its uids per step, their deposits, reversed deposits and time-to-convert histograms
(``ttc``: sparse, store/sqlite/cube_ttc.py), and money per currency (``cube_money``). Each uid
adds to the rows of its click only (its bucket, its keys), so rows add up exactly across
buckets and keys.

- ``level``: ``LEVEL_15M`` (15-minute buckets: every time zone's hours and days start on one),
  ``LEVEL_HOUR`` (UTC hours) or ``LEVEL_DAY`` (UTC days); ``bucket`` is the bucket's start,
  epoch ms. A window is read in the coarsest buckets that fit it (store/sqlite/cube_segments.py):
  hours at its edges, so that an edge of a busy day reads a row per key and hour rather than
  nearly one per click (15 minutes of 10,000 ads).
- ``dim``: ``H`` (``''``) for the rows keyed by (link, campaign, ad set, ad): any grouping or
  filter on ad sets or ads; ``C`` (``'~'``) for the same summed per (link, campaign): a report
  by link or campaign (hundreds of keys, not thousands of ads, however dense the traffic);
  else a dimension (``country``, ``sub.creative``...) whose rows
  are keyed by (its value, link, campaign); or a dimension's *value rows* (``=country``:
  ``by_value``), keyed by its value alone, for a report on that dimension without link or
  campaign. Clicks without a value of a dimension have no row of it: their share is the H
  rows' (the whole space's) less the dimension's (value rows') (cube.py).
- ``ALL`` (``'*'``): the whole space, without a key, so that the funnel reads one row per
  bucket.
- ``LEVELS``: which levels each kind of row has. The whole space, the H and C rows and the
  value rows have all three; a dimension's rows keyed with link and campaign UTC days only
  (``LEVEL_DAY``): a 15-minute row per (value, link, campaign) is about one row per click, so
  they would cost as much as the clicks (the catch-up measured a third slower with them),
  while a dimension's values per 15 minutes are few once traffic is dense. So a report on one
  dimension is read from the cube in every time zone, by hour and over a window that ends
  now; one on a dimension with link or campaign (grouped or filtered) that cuts UTC days
  counts the cut part from the clicks (cube.py).
- ``cube_keys`` names each key once (``key_id``); ``cube_uids`` holds what each uid added (its
  state), by its click's id, so that a change to the uid (a late event, bind or click, a
  reversal, an erasure) takes the old share off and adds the new one.
- A uid's time to convert to a step is from its click to its first event of the step (an
  event before its click, a late click, counts in the first bin). The name beside a campaign,
  ad set or ad id (``cube_names``) is that of its latest click with one, erased clicks too.
"""

from __future__ import annotations

import sqlite3

from xtracker_server.store.sqlite.rollup_schema import CUBE_FORMAT
from xtracker_wire import CANONICAL_EVENTS

__all__ = [
    "ALL",
    "COUNTS",
    "CUBE_DROPPED",
    "CUBE_SCHEMA",
    "CUBE_TABLES",
    "DIMENSION_LEVELS",
    "FRESH_TABLE",
    "GRID_LEVELS",
    "LEVELS",
    "LEVEL_15M",
    "LEVEL_DAY",
    "LEVEL_HOUR",
    "LEVEL_MS",
    "NAMED",
    "READ_TABLE",
    "UIDS_TABLE",
    "VALUE_ROWS",
    "C",
    "H",
    "by_value",
    "ready",
]

#: The clicks a catch-up round marked as *fresh* (store/sqlite/cube_feed.py ``feed_clicks``):
#: their uids' steps are not looked up. The rollup connection's own (a temporary table,
#: created with it: store/sqlite/rollup.py ``with_rollup``), emptied by every round.
FRESH_TABLE = "CREATE TEMP TABLE IF NOT EXISTS cube_fresh (click_id INTEGER PRIMARY KEY)"

#: What the shares of a round's marked uids are worked out from, read from the main file by
#: the round's first transaction (store/sqlite/cube_feed.py ``read_marked``): each marked
#: click's columns (NULL: no click there, or a placeholder's). The share's second transaction
#: reads only this and the rollup's file, so that the main file's snapshot is not held while
#: its Python works: the server's writer can start its WAL over meanwhile. The rollup
#: connection's own (a temporary table, created with it: rollup.py ``with_rollup``).
READ_TABLE = """CREATE TEMP TABLE IF NOT EXISTS cube_read (
        click_id  INTEGER PRIMARY KEY,
        space_id  INTEGER NOT NULL,
        uid TEXT, created_ms INTEGER, link_id INTEGER, campaign_id TEXT, adset_id TEXT,
        ad_id TEXT, sub_ids TEXT,
        -- the columns of cube_feed.D_DIMENSIONS
        ad_name TEXT, adset_name TEXT, browser TEXT, campaign_name TEXT, country TEXT,
        device TEXT, os TEXT, placement TEXT, referrer_domain TEXT, utm_campaign TEXT,
        utm_content TEXT, utm_medium TEXT, utm_source TEXT, utm_term TEXT
    )"""

#: ``dim`` of the rows keyed by (link, campaign, ad set, ad).
H = ""
#: ``dim`` of the H rows summed per (link, campaign): their keys have no ad set nor ad.
C = "~"
#: ``dim`` of the rows of the whole space (one key each): the funnel and its series.
ALL = "*"
LEVEL_15M = 0
LEVEL_DAY = 1
LEVEL_HOUR = 2
#: Bucket length per level, ms.
LEVEL_MS = {LEVEL_15M: 15 * 60_000, LEVEL_HOUR: 3_600_000, LEVEL_DAY: 86_400_000}
#: The levels of each kind of rows (``dim``): the whole space's, the H and C rows' (and the
#: value rows') all three, any other dimension's UTC days only.
GRID_LEVELS = (LEVEL_15M, LEVEL_HOUR, LEVEL_DAY)
LEVELS: dict[str, tuple[int, ...]] = {ALL: GRID_LEVELS, H: GRID_LEVELS, C: GRID_LEVELS}
DIMENSION_LEVELS = (LEVEL_DAY,)
#: The ``dim`` of a dimension's value rows starts so (``by_value``); they have all three levels.
VALUE_ROWS = "="


def by_value(dim: str) -> str:
    """The ``dim`` of the rows of ``dim``'s values alone (no link or campaign in their key)."""
    return VALUE_ROWS + dim


#: The ids whose latest name the cube keeps (``cube_names``): dimension -> click column.
NAMED = {"campaign": "campaign_name", "adset": "adset_name", "ad": "ad_name"}

#: The counts of a cube row, in its column order.
COUNTS = ("clicks", *CANONICAL_EVENTS, "deposits", "reversed")
#: Tables of the cube's earlier formats, dropped when the rollup is built again.
CUBE_DROPPED = ("cube_ttc",)
CUBE_TABLES = ("cube", "cube_money", "cube_keys", "cube_uids", "cube_names",
               "cube_touched", "cube_state")  # fmt: skip

# What each uid with a click added (JSON: cube_feed._Share), and its click's link; keyed by its
# click's id (main.clicks.id: one click per uid), so that a new click's row, and its entry in
# the index by link (then click id), go at the end: the uid's random text as the key cost two
# random page writes per new click on a large file (format 12, cube_feed.key_by_click).
UIDS_TABLE = """CREATE TABLE IF NOT EXISTS reports.cube_uids (
        click_id  INTEGER PRIMARY KEY,
        space_id  INTEGER NOT NULL,
        link_id   INTEGER,
        state     TEXT NOT NULL
    )"""

CUBE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS reports.cube (
        space_id  INTEGER NOT NULL,
        dim       TEXT NOT NULL,
        level     INTEGER NOT NULL,
        bucket    INTEGER NOT NULL,
        key_id    INTEGER NOT NULL,
        clicks    INTEGER NOT NULL,
        contact       INTEGER NOT NULL,  -- uids that reached each step (at any time)
        subscribed    INTEGER NOT NULL,
        registration  INTEGER NOT NULL,
        deposit       INTEGER NOT NULL,
        deposits  INTEGER NOT NULL,      -- deposit events
        reversed  INTEGER NOT NULL,      -- of them, reversed
        ttc       BLOB,                  -- time to convert (store/sqlite/cube_ttc.py)
        PRIMARY KEY (space_id, dim, level, bucket, key_id)
    ) WITHOUT ROWID""",
    # Money per currency, exact: sums of integer parts and of 8-digit fractions (as
    # report_steps keeps them), for the deposits (n) and the reversed ones (rn).
    """CREATE TABLE IF NOT EXISTS reports.cube_money (
        space_id  INTEGER NOT NULL,
        dim       TEXT NOT NULL,
        level     INTEGER NOT NULL,
        bucket    INTEGER NOT NULL,
        key_id    INTEGER NOT NULL,
        currency  TEXT NOT NULL,
        n         INTEGER NOT NULL,
        units     INTEGER NOT NULL,
        fraction  INTEGER NOT NULL,
        scale     INTEGER NOT NULL,  -- most decimals given (never lowered: display only)
        rn        INTEGER NOT NULL,
        r_units   INTEGER NOT NULL,
        r_fraction INTEGER NOT NULL,
        r_scale   INTEGER NOT NULL,
        PRIMARY KEY (space_id, dim, level, bucket, key_id, currency)
    ) WITHOUT ROWID""",
    # H keys: (link_id, campaign, adset, ad); C keys: (link_id, campaign); a dimension's:
    # (value, link_id, campaign); its value rows': (value).
    # NULL is "none" (looked up with IS).
    """CREATE TABLE IF NOT EXISTS reports.cube_keys (
        id        INTEGER PRIMARY KEY,
        space_id  INTEGER NOT NULL,
        dim       TEXT NOT NULL,
        value     TEXT,
        link_id   INTEGER,
        campaign  TEXT,
        adset     TEXT,
        ad        TEXT
    )""",
    """CREATE INDEX IF NOT EXISTS reports.cube_keys_of
        ON cube_keys(space_id, dim, value, link_id, campaign, adset, ad)""",
    UIDS_TABLE,
    "CREATE INDEX IF NOT EXISTS reports.cube_uids_link ON cube_uids(space_id, link_id)",
    # The latest name of each campaign, ad set and ad id (of its most recent click with one).
    """CREATE TABLE IF NOT EXISTS reports.cube_names (
        space_id  INTEGER NOT NULL,
        dim       TEXT NOT NULL,
        id        TEXT NOT NULL,
        name      TEXT NOT NULL,
        at_ms     INTEGER NOT NULL,
        click_id  INTEGER NOT NULL,
        PRIMARY KEY (space_id, dim, id)
    ) WITHOUT ROWID""",
    # The uids a catch-up round changed, by their click's id; emptied by every round.
    """CREATE TABLE IF NOT EXISTS reports.cube_touched (
        click_id  INTEGER PRIMARY KEY,
        space_id  INTEGER NOT NULL
    )""",
    # The low mark of main.clicks (every click id at or below it was read), and whether the
    # cube is ready: it has read every click there was once (``ready``).
    """CREATE TABLE IF NOT EXISTS reports.cube_state (
        one       INTEGER PRIMARY KEY CHECK (one = 1),
        click_id  INTEGER NOT NULL,
        ready     INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO reports.cube_state VALUES (1, 0, 0)",
)


def ready(conn: sqlite3.Connection) -> bool:
    """Whether the rollup of ``conn`` has the report cube and it is *ready*: its catch-up has
    read every click there was at least once since it was (re)built, so it holds every uid
    (later clicks are in it as soon as the rollup catches up, as are events). While it is
    being built (the setting turned on, a new cube format), reports read without it: the
    scan, the steps' counts."""
    row = conn.execute("SELECT version FROM reports.rollup_format").fetchone()
    if row is None or row[0] != CUBE_FORMAT:
        return False
    state = conn.execute("SELECT ready FROM reports.cube_state").fetchone()
    return bool(state and state[0])
