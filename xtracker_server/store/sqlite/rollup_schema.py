"""The report rollup's tables (the attached file ``reports``) and the trigger that rolls one
fed event up: what store/sqlite/rollup.py creates, feeds and reads (its docstring says how the
rollup works)."""

from __future__ import annotations

from xtracker_server.store.sqlite.rollup_activity import ACTIVITY_SCHEMA, amount_parts
from xtracker_server.store.sqlite.rollup_loose import LOOSE_SCHEMA
from xtracker_wire import REVERSAL

__all__ = ["BEFORE_CLICK_KEYS", "BEFORE_COARSE", "BEFORE_COUNTS", "BEFORE_LOOSE", "CUBE_FORMAT",
           "FEED", "NEW_WITH_CUBE", "OLD_CUBE_FORMATS", "ROLLUP_FORMAT", "SCHEMA", "TRIGGER",
           "UNKNOWN", "amount_parts"]  # fmt: skip


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS reports.report_steps (
        space_id  INTEGER NOT NULL,
        -- the link of the uid's click; 0: a click without a link; -1 (UNKNOWN): no click
        link_id   INTEGER NOT NULL,
        event     TEXT NOT NULL,
        at_ms     INTEGER NOT NULL,  -- the event's occurred_at_ms
        inbox_id  INTEGER NOT NULL,
        uid       TEXT NOT NULL,
        prev_ms   INTEGER,           -- the uid's previous event of this step; NULL: the first
        -- a deposit's amount, exactly: integer part, fraction as 8 digits, decimals given
        currency  TEXT,
        units     INTEGER,
        fraction  INTEGER,
        scale     INTEGER,
        PRIMARY KEY (space_id, link_id, event, at_ms, inbox_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS reports.report_steps_uid
        ON report_steps(space_id, uid, event, at_ms, inbox_id)""",
    # The rows with a previous event (a uid's step again: a few of them), by that event's time
    # and by their own: a window cut in parts counts the uids seen in two of its parts from
    # these (store/sqlite/reports_activity.py), not from every event of a part.
    """CREATE INDEX IF NOT EXISTS reports.report_steps_prev
        ON report_steps(space_id, event, prev_ms, at_ms, link_id) WHERE prev_ms IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS reports.report_steps_again
        ON report_steps(space_id, event, at_ms, prev_ms, link_id) WHERE prev_ms IS NOT NULL""",
    # The low marks: every id of the inbox and of the backlog at or below them was applied.
    """CREATE TABLE IF NOT EXISTS reports.rollup_state (
        one         INTEGER PRIMARY KEY CHECK (one = 1),
        inbox_id    INTEGER NOT NULL,
        backlog_id  INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO reports.rollup_state VALUES (1, 0, 0)",
    # The generation of the database the rollup was built from (store/sqlite/generation.py).
    """CREATE TABLE IF NOT EXISTS reports.built_for (
        one         INTEGER PRIMARY KEY CHECK (one = 1),
        generation  TEXT NOT NULL
    )""",
    # The low mark of report_removals (main file, migration 13).
    """CREATE TABLE IF NOT EXISTS reports.removals_state (
        one         INTEGER PRIMARY KEY CHECK (one = 1),
        removal_id  INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO reports.removals_state VALUES (1, 0)",
    # What the rows mean (``ROLLUP_FORMAT``): a rollup of another format is built again.
    """CREATE TABLE IF NOT EXISTS reports.rollup_format (
        one      INTEGER PRIMARY KEY CHECK (one = 1),
        version  INTEGER NOT NULL
    )""",
    # Per followed table (inbox, backlog, removals): the highest id read (none: the low mark),
    # and the ids below it not read yet, each with when it was first missed (wall clock).
    """CREATE TABLE IF NOT EXISTS reports.rollup_marks (
        feed  TEXT PRIMARY KEY,
        high  INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS reports.rollup_gaps (
        feed     TEXT NOT NULL,
        id       INTEGER NOT NULL,
        since_s  REAL NOT NULL,
        PRIMARY KEY (feed, id)
    ) WITHOUT ROWID""",
    # Deposits that were reversed (issue 17 §4): a deposit.reversed names its deposit by the
    # deposit's eid and uid. Matched from either side as each is fed (a reversal may arrive
    # before its deposit), so the reports join the deposit rows of report_steps to this.
    """CREATE TABLE IF NOT EXISTS reports.report_reversed (
        space_id     INTEGER NOT NULL,
        deposit_id   INTEGER NOT NULL,  -- the deposit's inbox id
        reversal_id  INTEGER NOT NULL,  -- the reversal's inbox id
        uid          TEXT NOT NULL,
        PRIMARY KEY (space_id, deposit_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS reports.report_reversed_by
        ON report_reversed(reversal_id)""",
    # Every reversal fed, by what it names: a deposit fed later finds its reversal here with
    # one probe of a small table, rather than reading its uid's events in the inbox.
    """CREATE TABLE IF NOT EXISTS reports.report_reversals (
        space_id     INTEGER NOT NULL,
        uid          TEXT NOT NULL,
        eid          TEXT NOT NULL,
        reversal_id  INTEGER NOT NULL,
        PRIMARY KEY (space_id, uid, eid, reversal_id)
    ) WITHOUT ROWID""",
    # The events being rolled up; emptied by every catch-up.
    """CREATE TABLE IF NOT EXISTS reports.feed (
        inbox_id  INTEGER PRIMARY KEY,
        space_id  INTEGER NOT NULL,
        uid       TEXT NOT NULL,
        event     TEXT NOT NULL,
        at_ms     INTEGER NOT NULL,
        value     TEXT,
        currency  TEXT
    )""",
    # Activity-mode counts per bucket, and the triggers that keep them (rollup_activity.py).
    *ACTIVITY_SCHEMA,
    # Events without a uid, for the funnel's line of them (rollup_loose.py).
    *LOOSE_SCHEMA,
)


# One row of the rollup per fed event, in any order (ties on a millisecond are ordered by inbox
# id), and the uid's next event of the step gets it as its previous when it came later. Fed
# twice (a backlog entry for an event already rolled up), it changes nothing. A TEMP trigger:
# it reads the main file's clicks and writes the attached file's rollup.
TRIGGER = f"""
CREATE TEMP TRIGGER IF NOT EXISTS report_feed AFTER INSERT ON reports.feed
BEGIN
    INSERT OR IGNORE INTO report_steps VALUES (
        NEW.space_id,
        COALESCE((SELECT COALESCE(link_id, 0) FROM main.clicks
                  WHERE space_id = NEW.space_id AND uid = NEW.uid), -1),
        NEW.event, NEW.at_ms, NEW.inbox_id, NEW.uid,
        (SELECT at_ms FROM reports.report_steps
         WHERE space_id = NEW.space_id AND uid = NEW.uid AND event = NEW.event
           AND (at_ms, inbox_id) < (NEW.at_ms, NEW.inbox_id)
         ORDER BY at_ms DESC, inbox_id DESC LIMIT 1),
        NEW.currency, {", ".join(amount_parts("NEW.value"))});
    UPDATE report_steps SET prev_ms = NEW.at_ms
    WHERE (space_id, link_id, event, at_ms, inbox_id) = (
        SELECT space_id, link_id, event, at_ms, inbox_id FROM reports.report_steps
        WHERE space_id = NEW.space_id AND uid = NEW.uid AND event = NEW.event
          AND (at_ms, inbox_id) > (NEW.at_ms, NEW.inbox_id)
        ORDER BY at_ms, inbox_id LIMIT 1);
    -- a reversal: kept for a deposit fed later, and paired with the deposit of its uid with
    -- its eid if that is already stored
    INSERT OR IGNORE INTO report_reversals
        SELECT NEW.space_id, NEW.uid, r.eid, NEW.inbox_id FROM main.inbox r
        WHERE NEW.event = '{REVERSAL}' AND r.id = NEW.inbox_id AND r.eid IS NOT NULL;
    INSERT OR IGNORE INTO report_reversed
        SELECT NEW.space_id, d.id, NEW.inbox_id, NEW.uid FROM main.inbox r
        JOIN main.inbox d ON d.space_id = NEW.space_id AND d.uid = NEW.uid
            AND d.event = 'deposit' AND d.eid = r.eid
        WHERE NEW.event = '{REVERSAL}' AND r.id = NEW.inbox_id;
    -- a deposit: a reversal fed before it
    INSERT OR IGNORE INTO report_reversed
        SELECT NEW.space_id, NEW.inbox_id, w.reversal_id, NEW.uid FROM report_reversals w
        WHERE NEW.event = 'deposit' AND w.space_id = NEW.space_id AND w.uid = NEW.uid
          AND w.eid = (SELECT eid FROM main.inbox WHERE id = NEW.inbox_id);
END
"""

FEED = (
    "INSERT OR IGNORE INTO reports.feed"
    " SELECT id, space_id, uid, event, occurred_at_ms, value, currency FROM main.inbox"
)

#: ``report_steps.link_id`` of an event whose uid has no click in the space (a made-up uid, a
#: partner's test postback): the funnel reports them on a line of their own.
UNKNOWN = -1
#: 10: the events without a uid (rollup_loose.py) beside the steps, and the steps' indexes of
#: the rows with a previous event (8, never released, had the events without them); 6 had the
#: activity counts per bucket (rollup_activity.py) without either; 2 had events whose uid has no
#: click rolled up under ``UNKNOWN`` (1: under 0, no link), without the counts.
#: A rollup built without the report cube (XTRACKER_REPORT_CUBE off).
ROLLUP_FORMAT = 10
#: 14: the report cube (store/sqlite/cube_schema.py) beside the steps (XTRACKER_REPORT_CUBE on),
#: with the activity counts, the events without a uid and the indexes of the rows with a
#: previous event; 13 had the same cube without its hour rows and C rows (per link and
#: campaign); 12 the same with its uids keyed by uid; 11 the same steps and a cube
#: without the dimensions' value rows (9, never released, without the indexes); 7 had them
#: without those events, 5 the same cube without the counts, 3 a row per step and bin of the
#: time to convert and 15-minute rows of every dimension, 4 (never released) the time to
#: convert in 80 packed columns.
CUBE_FORMAT = 14
#: Whether a rollup that a store opening it "as built" (``cube=None``: a command's) finds not
#: built yet is built with the cube: as XTRACKER_REPORT_CUBE's default (config.py), which
#: tests/server/test_report_cube_setting.py holds them to.
NEW_WITH_CUBE = True
#: The cube's earlier formats: a rollup built with one is built again with the current one,
#: but those of ``BEFORE_CLICK_KEYS``.
OLD_CUBE_FORMATS = (3, 4, 11, 12)
#: Formats whose cube is the current one's without its hour rows and C rows (per link and
#: campaign), and the current format: opened with the cube, such a rollup sums those from its
#: rows in place (cube_coarse.add_coarse_rows), rather than building the cube again from the
#: clicks; and if it keeps its uids by uid (``BEFORE_CLICK_KEYS``), keys them by their click's
#: id in place (cube_feed.key_by_click).
BEFORE_COARSE = {12: CUBE_FORMAT, 13: CUBE_FORMAT}
BEFORE_CLICK_KEYS = (12,)
#: Formats from before the activity counts (rollup_activity.py), and the current format with
#: the same rows: opened, such a rollup counts them from its rows (``COUNT_AGAIN``), after it
#: rolled up its events without a uid.
BEFORE_COUNTS = {2: ROLLUP_FORMAT, 3: 3, 4: 4, 5: 11}
#: Formats with the counts but from before the events without a uid (rollup_loose.py) or the
#: indexes of the rows with a previous event, and the current format: opened, such a rollup
#: rolls up those events it has read from the inbox (none again: they are kept once) and gets
#: the indexes.
BEFORE_LOOSE = {6: ROLLUP_FORMAT, 7: 11, 8: ROLLUP_FORMAT, 9: 11}
