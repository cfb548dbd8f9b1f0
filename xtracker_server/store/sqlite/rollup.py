"""The report rollup: ``report_steps``, built from the inbox off the write path.

The reports count distinct uids per step in a window; with an index alone that takes a sort of
every event of the window. So each attributed event gets a narrow row in ``report_steps``, in
the order the reports read (space, link, step, time), carrying the time of the uid's previous
event of the same step (``prev_ms``): "distinct uids with the step in ``[from, to)``" is then
"rows in the window whose ``prev_ms`` is NULL or before ``from``", a range count (see
``store/sqlite/reports.py``).

The rollup lives in a file of its own (``db.reports_path``: ``x.reports.db`` next to ``x.db``),
attached as ``reports``. It is derived data: its own lock, ``synchronous=NORMAL``, rebuilt from the
inbox when missing. Nothing of it runs in the writer's transactions, so ingest does not pay for
reports. ``report_reversed`` pairs each reversed deposit with its reversal (``deposit.reversed``,
matched by uid and eid from whichever of the two is fed last; ``report_reversals`` keeps every
reversal for the deposits fed after it). ``catch_up`` brings it up to date: it feeds the inbox rows
it has not read yet, then what ``report_backlog`` (main file, migrations 4 and 6) recorded since:
events a bind attributed (or moved to another uid) after the rollup read them, and clicks stored
after events of their uid; and what ``report_removals`` (migration 13, store/sqlite/purge.py) says
left: erased uids and events, deleted links and spaces. The server runs it in the background and
before every report, so a report counts every event committed before it was asked for.

Beside the rows, counts per bucket for the activity-mode reports (store/sqlite/rollup_activity.py):
triggers on the rollup's own tables log every change of a row, and each round folds the log in.

With XTRACKER_REPORT_CUBE on, each round also keeps the report cube (store/sqlite/cube_feed.py)
up to date: it marks the uids it changed and follows ``main.clicks`` with a watermark of its own
(a click counts without events), and the cube moves by the difference of those uids' shares.
The rollup records whether it was built with the cube (its format: ``ROLLUP_FORMAT`` without,
``CUBE_FORMAT`` with); opened with the setting changed either way, it is built again from the
inbox, and a catch-up feeds the cube only of a rollup built with it.

Row ids may commit out of order (several writers: id 9 may commit after id 10 was read), so the
rollup follows each of the three tables with a ``domain.tail.Watermark``: the highest id read
(``rollup_marks``) and the ids below it not read yet (``rollup_gaps``). Every round reads the
rows above the high mark and the gaps that have been committed since; a gap is waited for
``ROLLUP_GAP_S`` (a rolled-back insert, a deleted row leave one for good). ``rollup_state`` and
``removals_state`` hold each table's low mark: every id at or below it was applied (what
``applied_removals`` answers, and what may be pruned: store/sqlite/rollup_marks.py).

The rollup records the database generation it was built for (store/sqlite/generation.py). Opened
next to a database of another generation (``xtracker restore`` renews it), or one whose inbox
or backlog ends before its watermarks (the file was replaced by a copy, the way restores used
to be done), it is dropped and built again from the inbox.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from xtracker_server.domain.watermark import Watermark
from xtracker_server.store.sqlite import cube_schema, rollup_loose
from xtracker_server.store.sqlite import rollup_drops as drops
from xtracker_server.store.sqlite.cube_schema import (
    CUBE_DROPPED,
    CUBE_SCHEMA,
    CUBE_TABLES,
    FRESH_TABLE,
    READ_TABLE,
)
from xtracker_server.store.sqlite.db import attach_reports, connect, reports_path
from xtracker_server.store.sqlite.generation import generation
from xtracker_server.store.sqlite.lazy import LazyModule
from xtracker_server.store.sqlite.rollup_activity import (
    ACTIVITY_TABLES,
    CLICK_COUNTS,
    CLICKS_AGAIN,
    COUNT_AGAIN,
    FOLD,
)
from xtracker_server.store.sqlite.rollup_marks import (
    BACKLOG,
    CLICKS,
    FEEDS,
    INBOX,
    REMOVALS,
    RollupBehind,
    advance,
    mark,
    next_top,
    progress,
    save,
    unread,
)
from xtracker_server.store.sqlite.rollup_marks import ROLLUP_GAP_S as ROLLUP_GAP_S  # the tests'
from xtracker_server.store.sqlite.rollup_schema import (
    BEFORE_CLICK_KEYS,
    BEFORE_COARSE,
    BEFORE_COUNTS,
    BEFORE_LOOSE,
    CUBE_FORMAT,
    FEED,
    NEW_WITH_CUBE,
    OLD_CUBE_FORMATS,
    ROLLUP_FORMAT,
    SCHEMA,
    TRIGGER,
)

if TYPE_CHECKING:
    from xtracker_server.store.sqlite import cube_coarse, cube_feed
else:  # only a catch-up with the report cube needs it (store/sqlite/lazy.py); an upgrade of it
    cube_feed = LazyModule("xtracker_server.store.sqlite.cube_feed")
    cube_coarse = LazyModule("xtracker_server.store.sqlite.cube_coarse")

log = logging.getLogger("xtracker.store")
T = TypeVar("T")

#: Inbox rows read by one catch-up transaction (a few hundred milliseconds of work at most).
CHUNK = 20_000
#: Events per round of a catch-up given a time (a report request's, a slice of housekeeping's):
#: about a second with the report cube, so that a request waits about that long for the round
#: under way before its own.
SLICE_CHUNK = 5_000
#: Events (and clicks) per round of the background catch-up (housekeeping's, while traffic comes
#: in), and the pause after each round that leaves more: a round reads the main file from one
#: snapshot, and while a reader holds one the writer can neither checkpoint past it nor start
#: its WAL over; back to back, rounds of thousands of clicks (a second under load on a large
#: file) kept the WAL from ever starting over, and ``/r``'s p99 at 5,000,000 events rose 1.5x
#: (bench/growth.py --cube, 2026-12-01: the WAL grew to 40 MB and more, 7 MB with the pause).
#: Short rounds with a pause between them let the writer's own checkpoints empty it.
BACKGROUND_CHUNK = 2_000
ROUND_PAUSE_S = 0.05
#: Page cache of the rollup's file for a connection that builds it (KiB, as a negative
#: cache_size): the cube's upserts land all over its tables; SQLite's default is 2 MiB.
CACHE_KIB = -65_536


def open_rollup(path: str, *, cube: bool | None = False) -> sqlite3.Connection:
    """A connection to the database ``path`` that builds (and reads) its rollup, with the
    report cube or without (``with_rollup``)."""
    return with_rollup(connect(path), path, cube=cube)


def with_rollup(
    conn: sqlite3.Connection, path: str, *, cube: bool | None = False
) -> sqlite3.Connection:
    """Attach the rollup of the database ``path`` to ``conn`` (a writable connection to that
    database), creating its tables if need be, and give ``conn`` the trigger that builds it.
    ``cube``: with the report cube or without (XTRACKER_REPORT_CUBE); a rollup built the other
    way is built again. None: as it was built (a new one: without).

    Its transaction is deferred (``BEGIN IMMEDIATE`` would lock the main file too, holding up
    the server's writer): it reads the rollup, then writes it. SQLite answers a write that
    follows a read in the same transaction with "database is locked" at once, without waiting
    out the busy timeout, when another connection holds the rollup's write lock (a server's
    catch-up) or committed to it since the read; so, like ``catch_up``, it waits and tries
    again."""
    attach_reports(conn, path)
    conn.execute("PRAGMA reports.journal_mode=WAL")
    conn.execute("PRAGMA reports.synchronous=NORMAL")
    conn.execute(f"PRAGMA reports.cache_size={CACHE_KIB}")
    busy = 0
    while True:
        try:
            _prepare(conn, path, cube)
        except sqlite3.OperationalError as exc:
            busy += 1
            if busy > _BUSY_TRIES or not _is_busy(exc):
                raise
            time.sleep(_busy_pause(busy))
            continue
        break
    conn.execute(TRIGGER)
    conn.execute(FRESH_TABLE)  # the catch-up's fresh clicks (cube_feed.feed_clicks)
    conn.execute(READ_TABLE)  # and its marked clicks' copy (cube_feed.read_marked)
    return conn


#: How often a transaction of the rollup that found it locked is tried again (``_busy_pause``
#: apart: about 13 s in all, longer than the busy timeout of store/db.py).
_BUSY_TRIES = 50


def _busy_pause(busy: int) -> float:
    return min(0.5, 0.01 * busy)


def _prepare(conn: sqlite3.Connection, path: str, cube: bool | None) -> None:
    """``with_rollup``'s transaction."""
    conn.execute("BEGIN")
    try:
        if _current(conn, cube):  # built, as wanted, for this database: nothing to do
            conn.execute("COMMIT")
            return
        for statement in SCHEMA:
            conn.execute(statement)
        built = _format(conn)
        recount = built is not None and built in BEFORE_COUNTS and not _stale(conn)
        loose = built is not None and built in BEFORE_LOOSE and not _stale(conn)
        if (recount or loose) and built is not None:
            # the events without a uid it has read (logged for the counts by their trigger)
            rollup_loose.fill(conn, mark(conn, INBOX).high)
        if recount and built is not None:
            log.warning("the report rollup %s was built before its activity counts: counting"
                        " them from its rows", reports_path(path))  # fmt: skip
            conn.execute("DELETE FROM reports.activity_log")  # counted from the rows instead
            for statement in COUNT_AGAIN:
                conn.execute(statement)
            built = BEFORE_COUNTS[built]
        elif loose and built is not None:
            log.warning("the report rollup %s was built before its events without a uid:"
                        " rolling them up from the inbox", reports_path(path))  # fmt: skip
            for statement in FOLD:
                conn.execute(statement)
            built = BEFORE_LOOSE[built]
        if built in BEFORE_COARSE and cube is not False and not _stale(conn):
            # the coarser rows first: a share key_by_click takes off moves them too
            log.warning("the report rollup %s has no hour rows nor rows per link and campaign"
                        " in its cube: summing them from its rows, in place",
                        reports_path(path))  # fmt: skip
            added = cube_coarse.add_coarse_rows(conn)
            log.warning("the report rollup %s: %d cube rows added", reports_path(path), added)
            if built in BEFORE_CLICK_KEYS:
                log.warning("the report rollup %s keeps its cube's uids by uid: keying them by"
                            " their click, in place", reports_path(path))  # fmt: skip
                kept = cube_feed.key_by_click(conn)
                log.warning("the report rollup %s: %d uids keyed by their click",
                            reports_path(path), kept)  # fmt: skip
            built = BEFORE_COARSE[built]
        if cube is None:  # as built (an older cube built again); a new one as the default
            cube = NEW_WITH_CUBE if built is None else built in (CUBE_FORMAT, *OLD_CUBE_FORMATS)
        wanted = CUBE_FORMAT if cube else ROLLUP_FORMAT
        stale, old_format = _stale(conn), _old_format(conn, built, wanted)
        # The steps are the same with and without the cube: only the cube changes
        cube_only = not stale and old_format and built in _STEPS_KEPT
        if cube_only:
            log.warning(
                "the report rollup %s was built %s: %s",
                reports_path(path),
                "with an older report cube" if built in OLD_CUBE_FORMATS and cube
                else "without the report cube (XTRACKER_REPORT_CUBE is on now)" if cube
                else "with the report cube (XTRACKER_REPORT_CUBE is off now)",
                "building the cube again from the clicks" if cube else "dropping the cube",
            )  # fmt: skip
            for table in (*CUBE_TABLES, *CUBE_DROPPED):
                conn.execute(f"DROP TABLE IF EXISTS reports.{table}")
            conn.execute("DELETE FROM reports.report_clicks")  # counted again with the cube
            conn.execute("DELETE FROM reports.clicks_log")
            # every click read again: each uid's share worked out from its rolled-up steps
            conn.execute("DELETE FROM reports.rollup_marks WHERE feed = 'clicks'")
            conn.execute("DELETE FROM reports.rollup_gaps WHERE feed = 'clicks'")
        elif stale or old_format:
            log.warning(
                "the report rollup %s was built %s: rebuilding it from the inbox",
                reports_path(path),
                "for another copy of the database (restored?)"
                if stale
                else "by an older xtracker (issue 17: the report rows changed)",
            )
            conn.execute("DROP TABLE reports.report_steps")  # its index goes with it
            conn.execute("DROP TABLE reports.report_reversed")
            conn.execute("DROP TABLE reports.report_reversals")
            conn.execute("DROP TABLE reports.report_loose")
            for table in ACTIVITY_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS reports.{table}")
            for table in (*CUBE_TABLES, *CUBE_DROPPED):
                conn.execute(f"DROP TABLE IF EXISTS reports.{table}")
            conn.execute("DELETE FROM reports.feed")
            conn.execute("UPDATE reports.rollup_state SET inbox_id = 0, backlog_id = 0")
            rebuilt = "feed IN ('inbox', 'backlog', 'clicks')"
            conn.execute(f"DELETE FROM reports.rollup_marks WHERE {rebuilt}")
            conn.execute(f"DELETE FROM reports.rollup_gaps WHERE {rebuilt}")
            for statement in SCHEMA:
                conn.execute(statement)
        for statement in (*CUBE_SCHEMA, *CLICK_COUNTS) if cube else ():
            conn.execute(statement)
        for statement in CLICKS_AGAIN if cube and recount else ():
            conn.execute(statement)
        # Written only when it changes: an open that finds the rollup current writes nothing
        # (no commit to sync, no checkpoint when the command's last connection closes).
        conn.execute(
            "INSERT INTO reports.built_for VALUES (1, ?) ON CONFLICT (one) DO UPDATE"
            " SET generation = excluded.generation WHERE generation != excluded.generation",
            (generation(conn),),
        )
        conn.execute(
            "INSERT INTO reports.rollup_format VALUES (1, ?) ON CONFLICT (one) DO UPDATE"
            " SET version = excluded.version WHERE version != excluded.version",
            (wanted,),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _current(conn: sqlite3.Connection, cube: bool | None) -> bool:
    """Whether the rollup is built in the current format wanted (``cube``) and for this copy of
    the database: then its tables are all there, and ``_prepare`` creates and writes nothing
    (a command's report opens the rollup twice; each skips some 30 statements)."""
    made = "SELECT 1 FROM reports.sqlite_master WHERE type = 'table' AND name = 'rollup_format'"
    if conn.execute(made).fetchone() is None:
        return False
    built = _format(conn)
    wanted = built if cube is None else CUBE_FORMAT if cube else ROLLUP_FORMAT
    return built in (ROLLUP_FORMAT, CUBE_FORMAT) and built == wanted and not _stale(conn)


def rebuild_if_stale(path: str) -> None:
    """At start-up, before anything is written: drop the rollup of the database ``path`` if it
    was built for another copy of it (``with_rollup``). Later writes could hide a copy: a
    watermark the new inbox has passed again looks current."""
    if path == ":memory:" or not Path(reports_path(path)).exists():
        return  # nothing built yet (``xtracker worker`` never builds one)
    with_rollup(connect(path), path, cube=None).close()  # the cube as it was built with


def _format(conn: sqlite3.Connection) -> int | None:
    """The format the rollup was built in (None: not recorded, a new or an old rollup)."""
    row = conn.execute("SELECT version FROM reports.rollup_format").fetchone()
    return None if row is None else int(row[0])


#: Formats whose steps (report_steps, report_reversed, the activity counts) are those of the
#: current formats: going from one to another rebuilds only the cube.
_STEPS_KEPT = (ROLLUP_FORMAT, CUBE_FORMAT, *OLD_CUBE_FORMATS)


def _old_format(conn: sqlite3.Connection, built: int | None, wanted: int) -> bool:
    """Whether the rollup holds rows of another format than ``wanted`` (an empty one is any)."""
    if built is not None:
        return built != wanted
    return conn.execute("SELECT 1 FROM reports.report_steps LIMIT 1").fetchone() is not None


def _has_cube(conn: sqlite3.Connection) -> bool:
    """Whether the rollup was built with the report cube (XTRACKER_REPORT_CUBE)."""
    return _format(conn) == CUBE_FORMAT


def _stale(conn: sqlite3.Connection) -> bool:
    built = conn.execute("SELECT generation FROM reports.built_for").fetchone()
    cubed = conn.execute(
        "SELECT 1 FROM reports.sqlite_master WHERE type = 'table' AND name = 'cube_state'"
    ).fetchone()
    feeds = (INBOX, BACKLOG, CLICKS) if cubed else (INBOX, BACKLOG)
    marks = [mark(conn, feed).high for feed in feeds]
    if built is None:  # new, or built before generations: only an empty one is known good
        return any(marks)
    tops = [conn.execute(f"SELECT coalesce(max(id), 0) FROM {feed.table}").fetchone()[0]
            for feed in feeds]  # fmt: skip
    return built[0] != generation(conn) or any(m > t for m, t in zip(marks, tops, strict=True))


def catch_up(
    conn: sqlite3.Connection, *, chunk: int = CHUNK, now: float | None = None,
    budget_s: float | None = None, cube_may_lag: bool = False, pause_s: float = 0.0,
) -> int:  # fmt: skip
    """Roll up everything committed to the inbox so far; returns how many events were fed.
    ``now``: the wall clock in seconds (for the gaps' ages). ``budget_s``: stop after the round
    that used it up, raising ``RollupBehind`` if there is more (each round is kept).
    ``cube_may_lag`` (a report's catch-up): return once the steps are caught up while the cube
    is being built (not ready: its readers read without it), rather than wait for the cube.
    ``pause_s``: sleep that long after each round that leaves more (``ROUND_PAUSE_S``).

    Each round is one transaction that writes only the attached rollup file (``BEGIN`` is
    deferred: the main file is only read, from one snapshot), so it never waits for the
    server's writer nor holds it up; with the report cube, a second one works out the shares
    of the uids the first marked, from its copy of their clicks, without the main file's
    snapshot (``_apply_cube``)."""
    fed, busy, started = 0, 0, time.monotonic()
    while True:
        try:
            did = _in_transaction(conn, _round, chunk, time.time() if now is None else now)
            if did.cube and conn.execute(_COPIED).fetchone()[0]:
                _in_transaction(conn, _apply_cube)
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # Another process (the CLI next to a server) is catching up at the same moment:
            # its round is the same work, so wait for it and go on.
            busy += 1
            if busy > _BUSY_TRIES or not _is_busy(exc):
                raise
            time.sleep(_busy_pause(busy))
            continue
        fed += did.fed
        if did.done or (cube_may_lag and did.steps_done and did.building):
            return fed
        if budget_s is not None and time.monotonic() - started >= budget_s:
            raise RollupBehind(progress(conn))
        if pause_s:
            time.sleep(pause_s)


#: Whether a round copied marked clicks for its second transaction (cube_feed.read_marked).
_COPIED = "SELECT EXISTS (SELECT 1 FROM temp.cube_read)"


def _in_transaction(conn: sqlite3.Connection, work: Callable[..., T], *args: Any) -> T:
    """``work(conn, *args)`` in a transaction of its own, committed (rolled back if it
    raises)."""
    conn.execute("BEGIN")
    try:
        done = work(conn, *args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return done


def _apply_cube(conn: sqlite3.Connection) -> None:
    """A round's second transaction, with the report cube: the marked uids' shares
    (cube_feed.apply) from the clicks the first one copied, and the clicks' counts they
    logged. It reads only the rollup's file: the main file's snapshot is not held while the
    shares' Python works, and the server's writer can start its WAL over meanwhile."""
    cube_feed.apply(conn, read=False)
    for statement in FOLD:
        conn.execute(statement)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _round(conn: sqlite3.Connection, chunk: int, now: float) -> Round:
    cube = _has_cube(conn)  # read in the round's transaction: as the rollup was built
    marked = False
    if cube:  # fresh clicks a round cut short left are no longer known to have no steps
        conn.execute("DELETE FROM temp.cube_fresh")
        marked = conn.execute("SELECT EXISTS (SELECT 1 FROM reports.cube_touched)").fetchone()[0]
    inbox, backlog, removals = (mark(conn, feed) for feed in FEEDS)
    clicks = mark(conn, CLICKS) if cube else Watermark(0, {})
    top = next_top(conn, INBOX, inbox, chunk)
    # Clicks by a quarter of the events' chunk while events are left: in a rebuild, a click's
    # uid has mostly been counted with its events already (one write), rather than before
    # them and again after.
    click_top = None
    if cube:
        click_top = next_top(conn, CLICKS, clicks, chunk if top is None else max(1, chunk // 4))
    backlog_top = conn.execute("SELECT max(id) FROM main.report_backlog").fetchone()[0] or 0
    removal_top = conn.execute("SELECT max(id) FROM main.report_removals").fetchone()[0] or 0
    backlog_top, removal_top = max(backlog_top, backlog.high), max(removal_top, removals.high)
    new_backlog = backlog_top > backlog.high or bool(backlog.gaps)
    new_removals = removal_top > removals.high or bool(removals.gaps)
    new_clicks = click_top is not None or bool(clicks.gaps)
    if cube and click_top is None and not clicks.gaps:  # every click there was is read
        conn.execute("UPDATE reports.cube_state SET ready = 1 WHERE ready = 0")
    steps_done = top is None and not inbox.gaps  # and the backlog, removals: read whole below
    building = cube and not cube_schema.ready(conn)
    if steps_done and not new_backlog and not new_removals and not new_clicks and not marked:
        return Round(True, 0, True, building, cube)
    fed = 0
    if new_removals:  # first: every row of an erased uid still here was rolled up before
        drops.erased(conn, removals.high, removal_top, cube)
    # The inbox: the rows above the high mark (a chunk), and the gaps committed since.
    scanned_to = inbox.high if top is None else top
    read = [r[0] for r in conn.execute(
        "SELECT id FROM main.inbox WHERE id > ? AND id <= ?", (inbox.high, scanned_to)
    )]  # fmt: skip
    if top is not None:
        fed += conn.execute(
            f"{FEED} WHERE id > ? AND id <= ? AND uid IS NOT NULL AND test = 0", (inbox.high, top)
        ).rowcount
        fed += rollup_loose.feed(conn, "id > ? AND id <= ?", (inbox.high, top))
    if inbox.gaps:
        committed = "id IN (SELECT id FROM reports.rollup_gaps WHERE feed = 'inbox')"
        read += [r[0] for r in conn.execute(f"SELECT id FROM main.inbox WHERE {committed}")]
        fed += conn.execute(f"{FEED} WHERE {committed} AND uid IS NOT NULL AND test = 0").rowcount
        fed += rollup_loose.feed(conn, committed, ())
    new_inbox = advance(conn, INBOX, inbox, read, scanned_to, now)
    new_backlog_mark = backlog
    if new_backlog:
        # Events a bind attributed after the rollup read them (a later one comes through the
        # inbox above), then clicks that arrived after events of their uid. An event that moved
        # from one uid to another first leaves its old uid's rows.
        entries = (backlog.high, backlog_top)
        drops.moved(conn, *entries)
        if cube:  # the uids events moved off, and those whose click came after their events
            cube_feed.touch_uids(conn, "SELECT space_id, uid FROM main.report_backlog"
                                 f" WHERE {unread(BACKLOG)} AND uid IS NOT NULL",
                                 entries)  # fmt: skip
        fed += conn.execute(
            f"{FEED} WHERE id IN (SELECT inbox_id FROM main.report_backlog"
            f" WHERE {unread(BACKLOG)} AND kind = 'attributed') AND id <= ?"
            " AND uid IS NOT NULL AND test = 0",
            (*entries, new_inbox.high),
        ).rowcount
        rollup_loose.rebind(conn, unread(BACKLOG), entries, new_inbox.high)
        conn.execute(
            "UPDATE reports.report_steps SET link_id = b.link_id FROM ("
            " SELECT space_id, uid, COALESCE(link_id, 0) AS link_id FROM main.report_backlog"
            f" WHERE {unread(BACKLOG)} AND kind = 'click') AS b"
            " WHERE report_steps.space_id = b.space_id AND report_steps.uid = b.uid"
            " AND report_steps.link_id <> b.link_id",
            entries,
        )
        read = [r[0] for r in conn.execute(
            f"SELECT id FROM main.report_backlog WHERE {unread(BACKLOG)}", entries
        )]  # fmt: skip
        new_backlog_mark = advance(conn, BACKLOG, backlog, read, backlog_top, now)
    new_removals_mark, spaces_gone = removals, []
    if new_removals:
        drops.deleted(conn, removals.high, removal_top, cube)
        spaces_gone = [r[1] for r in drops.removals(conn, removals.high, removal_top, ("space",))]
        read = [r[0] for r in conn.execute(
            f"SELECT id FROM main.report_removals WHERE {unread(REMOVALS)}",
            (removals.high, removal_top),
        )]  # fmt: skip
        new_removals_mark = advance(conn, REMOVALS, removals, read, removal_top, now)
    if cube:
        # the uids of the events fed that have a click (an event of a uid without a click, a
        # test postback's or a made-up uid's, is in no cube row; an erased uid's click is
        # marked by its removal); before the clicks, the last to be marked (feed_clicks)
        cube_feed.touch_uids(conn, "SELECT space_id, uid FROM reports.feed")
    new_clicks_mark = clicks
    if new_clicks:
        click_to = clicks.high if click_top is None else click_top
        # once the cube is built, a new click that nothing else marked has no steps yet
        cube_feed.feed_clicks(conn, unread(CLICKS), (clicks.high, click_to), fresh=not building)
        read = [r[0] for r in conn.execute(
            f"SELECT id FROM main.clicks WHERE {unread(CLICKS)}", (clicks.high, click_to)
        )]  # fmt: skip
        new_clicks_mark = advance(conn, CLICKS, clicks, read, click_to, now)
    if cube:  # the shares are worked out by the round's second transaction (_apply_cube)
        for space_id in spaces_gone:
            cube_feed.drop_space(conn, space_id)
        cube_feed.read_marked(conn)
    for statement in FOLD:  # the activity counts (rollup_activity.py)
        conn.execute(statement)
    conn.execute("DELETE FROM reports.feed")
    save(conn, INBOX, inbox, new_inbox)
    save(conn, BACKLOG, backlog, new_backlog_mark)
    save(conn, REMOVALS, removals, new_removals_mark)
    if cube:
        save(conn, CLICKS, clicks, new_clicks_mark)
    return Round(top is None and click_top is None, fed, steps_done, building, cube)


class Round(NamedTuple):
    """What a catch-up round did: ``done`` (nothing was left to read), ``fed`` (events),
    ``steps_done`` (the steps had read everything committed at its start: only the cube may be
    behind), ``building`` (the cube is being built: not ready yet, ``cube_schema.ready``),
    ``cube`` (the rollup has the report cube: the round's second transaction applies what it
    marked, ``_apply_cube``)."""

    done: bool
    fed: int
    steps_done: bool
    building: bool
    cube: bool
