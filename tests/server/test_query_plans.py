"""The plan of every hot query at 10 million rows (issue 14), outside the outbox's (its own
tests). Each store call below runs for real on a small world whose statistics say a space
holds 10 million events (``tests/plans.py``), under each of the ``REGIMES`` the planner may
meet, and no statement it executes may read a big table whole, or all of one space of it. A
walk that is bounded all the same (an index read in order up to a ``LIMIT``, every row of a
batch deleted, a report's window of time) is allowed only where its plan is pinned: the pinned
line must be there.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.plans import (
    REPORTS_STATS,
    STATS,
    Planned,
    big_database,
    plans_of,
    trigger_plans,
    whole_space_walks,
)
from xtracker_server.domain.binds import BindKind
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.credentials import hash_secret
from xtracker_server.domain.deletion import Person
from xtracker_server.domain.destinations import DestinationKind, PreparedDestination
from xtracker_server.domain.groups import GroupQuery
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.reports import FunnelMode, Window
from xtracker_server.domain.tail import Watermark
from xtracker_server.domain.unrecorded import Reason, UnrecordedCount
from xtracker_server.store.sqlite import (
    binds,
    clicks,
    deletion,
    destinations,
    erasure,
    groups,
    inbox,
    links,
    outbox,
    postbacks,
    probe,
    reports,
    rollup,
    spaces,
    tail,
    unrecorded,
)
from xtracker_server.store.sqlite.db import open_db, reports_path, transaction
from xtracker_server.store.sqlite.rollup import with_rollup
from xtracker_server.store.sqlite.stats import ANALYSIS_LIMIT, MIN_ROWS

T0 = 1_750_000_000_000
HOUR = 3_600_000


@dataclass(frozen=True)
class World:
    """A small space seeded through the store, on a file whose statistics say it is huge."""

    conn: sqlite3.Connection
    path: Path  # the seeded file (committed: no case's writes)
    space: int
    link: int  # "ad1": clicks u1, u3
    other_link: int  # "ad2": click u2
    destination: int
    bearer: str
    ingest: str


def _draft(space: int, n: int, event: str, uid: str | None, tg_id: int | None = None) -> Any:
    key = hashlib.sha256(f"{space}|{n}".encode()).digest()
    value, currency = ("25.00", "USD") if event == "deposit" else (None, None)
    return inbox.InboxDraft(space, key, event, uid, tg_id, f"e{n}", value, currency,
                            T0 + n * 1000, T0 + n * 1000, "api")  # fmt: skip


def _click(space: int, link: int | None, uid: str, n: int) -> ClickDraft:
    return ClickDraft(space_id=space, uid=uid, created_ms=T0 + n, source="landing", link_id=link)


def _seed(path: Path, regime: dict[str, Any]) -> tuple[str, str]:
    """A space with two links, a webhook, clicks, events (two of a Telegram user only), a
    token bind, an attempt, postback log rows, unrecorded visits and its rollup; returns its
    bearer secret and ingest token."""
    conn = big_database(path, **regime)
    with transaction(conn):
        made = spaces.create_space(conn, "busy", T0)
        space = made.space.id
        spec = LinkSpec(kind=LinkKind.BOT, target="plans_bot")
        link = links.create_link(conn, space, "ad1", spec, T0).id
        other = links.create_link(conn, space, "ad2", spec, T0).id
        hook = PreparedDestination(
            DestinationKind.WEBHOOK, "hook", True, {"url": "http://127.0.0.1:9/hook"}, "secret",
            None, {e: e for e in ("contact", "subscribed", "registration", "deposit")}, None,
        )  # fmt: skip
        dest = destinations.create_destination(conn, space, hook, T0)
        assert dest is not None
        clicks.insert_clicks(conn, [_click(space, link, "u1", 1), _click(space, other, "u2", 2),
                                    _click(space, link, "u3", 3)])  # fmt: skip
        inbox.insert_events(conn, [_draft(space, 1, "contact", "u1"),
                                   _draft(space, 2, "deposit", "u1"),
                                   _draft(space, 3, "contact", None, tg_id=7),
                                   _draft(space, 4, "contact", "u2")])  # fmt: skip
        binds.bind(conn, space, "u3", 8, T0, BindKind.TOKEN)
        inbox.insert_events(conn, [_draft(space, 5, "subscribed", None, tg_id=8)])
        first = conn.execute("SELECT min(id) FROM deliveries").fetchone()[0]
        outbox.record_attempt(conn, outbox.AttemptRecord(first, space, T0, 500, 12, "retry",
                                                         "HTTP 500", None))  # fmt: skip
        for n in range(3):
            postbacks.log_postback(conn, postbacks.LogEntry(
                space, T0 + n, "127.0.0.1", "GET", f"uid=u1&n={n}", None,
                outcome="rejected" if n else "queued", uid="u1", token_name="default",
            ))  # fmt: skip
        unrecorded.add_unrecorded(conn, [UnrecordedCount(space, link, T0, Reason.BOT, 2)])
    rollup.catch_up(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return made.bearer, made.ingest_token


#: What the planner may know, each with the arguments of ``big_database``: the statistics of
#: a full ANALYZE of a busy space; none (never analysed); what the server's ANALYZE writes
#: (store/sqlite/stats.py: it reads ANALYSIS_LIMIT entries of each index); that, taken when the
#: tables had the MIN_ROWS rows below which the server takes none, on tables that grew since;
#: and a sample of one index all of one value.
REGIMES: dict[str, dict[str, Any]] = {
    "busy": {},
    "none": {"stats": False},
    "sampled": {"sample": ANALYSIS_LIMIT},
    "grown": {"sample": ANALYSIS_LIMIT, "sizes": dict.fromkeys([*STATS, *REPORTS_STATS], MIN_ROWS)},
    # the sample of the inbox's index by uid all of one uid (its first entries: before migration
    # 22, a space's events without a uid; now a uid that sends thousands of events): the planner
    # takes a uid for a thousand events (a grouped report's edges walked the whole inbox)
    "skewed": {
        "sample": ANALYSIS_LIMIT,
        "skewed": {"inbox_space_uid": f"{STATS['inbox']} {STATS['inbox']} 1001"},
    },
}


@pytest.fixture(scope="module", params=list(REGIMES))
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The world under one regime, built once: each case's writes are rolled back."""
    path = tmp_path_factory.mktemp(request.param) / "x.db"
    bearer, ingest = _seed(path, REGIMES[request.param])
    conn = with_rollup(open_db(str(path)), str(path))
    ids = conn.execute("SELECT id FROM links ORDER BY id").fetchall()
    yield World(
        conn=conn,
        path=path,
        space=conn.execute("SELECT id FROM spaces").fetchone()[0],
        link=ids[0][0],
        other_link=ids[1][0],
        destination=conn.execute("SELECT id FROM destinations").fetchone()[0],
        bearer=bearer,
        ingest=ingest,
    )
    conn.close()


@pytest.fixture
def world(seeded: World) -> Iterator[World]:
    yield seeded
    assert not seeded.conn.in_transaction, "a case left its transaction open"


@dataclass(frozen=True)
class Case:
    name: str
    #: The store call, ``run(conn, world)``; its statements are planned.
    run: Callable[[sqlite3.Connection, World], object]
    #: It writes: run in a write transaction (as the writer runs it), rolled back after.
    writes: bool = False
    #: What must be done first in that transaction (not planned).
    setup: Callable[[World], object] | None = None
    #: Plan lines (regular expressions) that must be there: bounded walks, allowed.
    pinned: tuple[str, ...] = ()
    #: Statements (regular expressions) left out: a total over everything of something,
    #: which a report reads on purpose (not a hot path).
    totals: tuple[str, ...] = ()

    def plans(self, w: World) -> list[Planned]:
        if not self.writes:
            return plans_of(w.conn, lambda c: self.run(c, w))
        w.conn.execute("BEGIN IMMEDIATE")
        try:
            if self.setup is not None:
                self.setup(w)
            return plans_of(w.conn, lambda c: self.run(c, w))
        finally:
            w.conn.execute("ROLLBACK")


@dataclass(frozen=True)
class Trigger(Case):
    """The statements of the body of the trigger ``name`` (``tests.plans.trigger_plans``);
    ``run`` gives the row that fires it."""

    def plans(self, w: World) -> list[Planned]:
        row = self.run(w.conn, w)
        assert isinstance(row, dict)
        return trigger_plans(w.conn, self.name, row)


@dataclass(frozen=True)
class Committed(Case):
    """A call that commits (``setup`` too): on a copy of the world."""

    def plans(self, shared: World) -> list[Planned]:
        copy = shared.path.parent / self.name / "x.db"
        copy.parent.mkdir(exist_ok=True)
        for name in (str(shared.path), reports_path(str(shared.path))):
            shutil.copy(name, copy.parent / Path(name).name)
        w = replace(shared, conn=with_rollup(open_db(str(copy)), str(copy)))
        try:
            if self.setup is not None:
                self.setup(w)
            return plans_of(w.conn, lambda c: self.run(c, w))
        finally:
            w.conn.close()


def _backlog(w: World) -> None:
    """One entry of each kind for the report rollup to apply: new events, an attribution, an
    event moved off a uid, a click after its uid's events, an erased uid and event, a deleted
    link."""
    with transaction(w.conn):
        inbox.insert_events(w.conn, _events(w, (20, "deposit", "u2", None),
                                            (21, "contact", "u4", None)))  # fmt: skip
        binds.bind(w.conn, w.space, "u1", 7, T0)  # attributes event 3
        binds.bind(w.conn, w.space, "u2", 8, T0)  # moves event 5 off the token bind's u3
        clicks.insert_clicks(w.conn, [_click(w.space, w.link, "u4", 5)])
        erasure.erase_person(w.conn, w.space, Person(uid="u1"))
        event = w.conn.execute("SELECT id FROM inbox WHERE eid = 'e20'").fetchone()[0]
        erasure.erase_events(w.conn, w.space, [event], [])
        deletion.mark_link(w.conn, w.space, "ad2", T0)
        while not deletion.delete_link_batch(w.conn, w.space, w.other_link).done:
            pass
    kinds = {r[0] for r in w.conn.execute("SELECT kind FROM report_removals")}
    assert kinds == {"uid", "event", "link"}
    backlog = w.conn.execute("SELECT kind, uid IS NOT NULL FROM report_backlog").fetchall()
    assert {tuple(r) for r in backlog} >= {("attributed", 0), ("attributed", 1), ("click", 1)}


def _events(w: World, *drafts: tuple[int, str, str | None, int | None]) -> list[Any]:
    return [_draft(w.space, n, e, uid, tg) for n, e, uid, tg in drafts]


def _log(w: World, outcome: str) -> postbacks.LogEntry:
    return postbacks.LogEntry(w.space, T0, "127.0.0.1", "GET", "uid=u1", None, outcome=outcome,
                              uid="u1", token_name="default")  # fmt: skip


WINDOW = Window(T0 - 7 * 24 * HOUR, T0 + HOUR)
#: A report reads the window of time asked for, through the (…, time) end of an index.
STEPS_WINDOW = (
    r"SEARCH (?:r|h|report_steps) USING PRIMARY KEY"
    r" \(space_id=\? AND link_id=\? AND event=\? AND at_ms>\? AND at_ms<\?\)"
)
#: Activity mode reads the counts per bucket of the window (store/sqlite/reports_activity.py),
#: and the rows at its ends off the 15-minute grid (STEPS_WINDOW).
ACTIVITY_WINDOW = (
    r"SEARCH report_activity USING PRIMARY KEY"
    r" \(space_id=\? AND link_id=\? AND event=\? AND kind=\? AND bucket>\? AND bucket<\?\)"
)
MONEY_WINDOW = (
    r"SEARCH m USING PRIMARY KEY"
    r" \(space_id=\? AND link_id=\? AND kind=\? AND bucket>\? AND bucket<\?\)"
)
CLICKS_WINDOW = (
    r"SEARCH clicks USING COVERING INDEX clicks_space_time"
    r" \(space_id=\? AND created_ms>\? AND created_ms<\?\)"
)
#: A window cut in parts counts the uids seen in two of them from the rows with a previous event
#: (a uid's step again), by that event's time or by their own, in the window: partial indexes of
#: those rows alone (store/sqlite/reports_activity.py ``_across``, ``_edges``).
PREV_WINDOW = (
    r"SEARCH h USING COVERING INDEX report_steps_prev"
    r" \(space_id=\? AND event=\? AND prev_ms>\? AND prev_ms<\?\)"
)
AGAIN_WINDOW = (
    r"SEARCH h USING COVERING INDEX report_steps_again"
    r" \(space_id=\? AND event=\? AND at_ms>\? AND at_ms<\?\)"
)
#: Events without a uid: their counts per bucket (LOOSE_BUCKETS), and the rows of the ends off
#: the grid (store/sqlite/rollup_loose.py; at 10 million events, reading them from the inbox
#: was most of a funnel's time).
LOOSE_BUCKETS = (
    r"SEARCH report_activity_money USING PRIMARY KEY"
    r" \(space_id=\? AND link_id=\? AND kind=\? AND bucket>\? AND bucket<\?\)"
)
LOOSE_ENDS = (
    r"SEARCH report_loose USING COVERING INDEX report_loose_time"
    r" \(space_id=\? AND at_ms>\? AND at_ms<\?\)"
)
#: A window under 15 minutes whole: read from its rows.
SHORT_WINDOW = Window(T0 + 60_000, T0 + 10 * 60_000)
#: The grouped report by scanning (store/sqlite/groups.py): the window's clicks, and in
#: activity mode the window's events.
GROUP_CLICKS_WINDOW = (
    r"SEARCH c USING INDEX clicks_space_time \(space_id=\? AND created_ms>\? AND created_ms<\?\)"
)
GROUP_EVENTS_WINDOW = (
    r"SEARCH i USING INDEX inbox_space_time"
    r" \(space_id=\? AND occurred_at_ms>\? AND occurred_at_ms<\?\)"
)
#: A deletion batch reads the rows to delete in index order, up to its LIMIT.
BATCH = r"SEARCH \w+ USING (?:COVERING INDEX \w+|PRIMARY KEY) \((?:space_id|destination_id)=\?\)"
#: The batch that blanks the uids the report backlog holds for a space (each one leaves the
#: partial index it is read through).
BACKLOG_BATCH = (
    r"SEARCH report_backlog USING COVERING INDEX report_backlog_uid \(space_id=\? AND uid>\?\)"
)
#: Whether any row is left, or the first row found (a placeholder's delivery).
FIRST_ROW = r"SEARCH \w+ USING (?:COVERING INDEX \w+|PRIMARY KEY) \(space_id=\?\)  <-  .* LIMIT 1$"
#: The foreign key's look for a deleted destination's deliveries, deleted before it: finds none.
DESTINATION_FK = (
    r"SEARCH deliveries USING COVERING INDEX sqlite_autoindex_deliveries_1 \(destination_id=\?\)"
    r"  <-  DELETE FROM destinations"
)

CASES = [
    # ingest: the dedup lookup, attribution by tg_id, the insert and its deliveries
    Case(
        "insert_events",
        lambda c, w: inbox.insert_events(
            c,
            _events(
                w,
                (10, "contact", "u1", None),
                (1, "contact", "u1", None),
                (11, "deposit", None, 8),
                (11, "deposit", None, 8),
            ),
        ),
        writes=True,
    ),
    Case(
        "record_postback",
        lambda c, w: postbacks.record_postback(
            c, _draft(w.space, 12, "deposit", "u1"), _log(w, "queued")
        ),
        writes=True,
    ),
    Case("log_postback", lambda c, w: postbacks.log_postback(c, _log(w, "ignored")), writes=True),
    # clicks
    Case(
        "insert_clicks",
        lambda c, w: clicks.insert_clicks(
            c, [_click(w.space, w.link, "n1", 9), _click(w.space, w.link, "n2", 9)]
        ),
        writes=True,
    ),
    Case(
        "insert_click",
        lambda c, w: clicks.insert_click(c, _click(w.space, None, "n3", 9)),
        writes=True,
    ),
    Trigger(
        "report_backlog_click",
        lambda c, w: {"space_id": w.space, "uid": "u1", "link_id": w.link},
    ),
    Case(
        "recent_click_of_link",
        lambda c, w: clicks.recent_click_of_link(c, w.space, w.link, "u1", T0),
    ),
    # binds and attribution
    Case("bind (bearer, new)", lambda c, w: binds.bind(c, w.space, "u1", 7, T0), writes=True),
    Case(
        "bind (token)",
        lambda c, w: binds.bind(c, w.space, "u9", 9, T0, BindKind.TOKEN),
        writes=True,
    ),
    Case(
        "bind (bearer replaces a token bind)",
        lambda c, w: binds.bind(c, w.space, "u1", 8, T0),
        writes=True,
    ),
    Case(
        "bind (token, uid taken)",
        lambda c, w: binds.bind(c, w.space, "u3", 9, T0, BindKind.TOKEN),
        writes=True,
    ),
    Case("uid_for_tg_id", lambda c, w: binds.uid_for_tg_id(c, w.space, 8)),
    Trigger(
        "report_backlog_moved",
        lambda c, w: {"id": 1, "uid": "u1", "space_id": w.space},
    ),
    # link and credential lookups (what the landing's and the auth caches load)
    Case("resolve_slug", lambda c, w: links.resolve_slug(c, "ad1")),
    Case("link_by_slug", lambda c, w: links.link_by_slug(c, w.space, "ad1")),
    Case("find_credential", lambda c, w: spaces.find_credential(c, hash_secret(w.bearer), T0)),
    Case(
        "is_ingest_token_of",
        lambda c, w: postbacks.is_ingest_token_of(c, w.space, w.ingest, T0),
    ),
    Case("alias_rows", lambda c, w: postbacks.alias_rows(c, w.space)),
    Case("allowed_currencies", lambda c, w: spaces.allowed_currencies(c, w.space)),
    Case("token_binds_allowed", lambda c, w: binds.token_binds_allowed(c, w.space)),
    Case("get_space", lambda c, w: spaces.get_space(c, w.space)),
    # the live tail
    Case("tail_poll (start)", lambda c, w: tail.tail_poll(c, None, {w.space}, 1.0)),
    Case(
        "tail_poll",
        lambda c, w: tail.tail_poll(c, (Watermark(0, {1: 0.5}),) * 3, {w.space}, 1.0),
    ),
    Case("tail_range", lambda c, w: tail.tail_range(c, w.space, (0, 0, 0), (10, 10, 10))),
    # the postback log
    Case(
        "list_log",
        lambda c, w: postbacks.list_log(c, w.space),
        pinned=(r"SEARCH postback_log USING INDEX postback_log_space \(space_id=\?\)",),
    ),
    Case(
        "list_log of one outcome",
        lambda c, w: postbacks.list_log(c, w.space, outcome="rejected"),
        pinned=(
            r"SEARCH postback_log USING INDEX postback_log_outcome"
            r" \(space_id=\? AND outcome=\?\)",
        ),
    ),
    Case("ingest_tokens", lambda c, w: postbacks.ingest_tokens(c, w.space, T0)),
    # the report rollup's catch-up (on a copy: it commits), and what it feeds
    Committed("catch_up", lambda c, w: rollup.catch_up(c), setup=_backlog),
    Trigger(
        "report_feed",
        lambda c, w: {
            "inbox_id": 9,
            "space_id": w.space,
            "uid": "u1",
            "event": "deposit",
            "at_ms": T0,
            "value": "1.00",
            "currency": "USD",
        },
    ),
    # reports: what they read is bounded by their window
    Case(
        "funnel_counts",
        lambda c, w: reports.funnel_counts(c, w.space, WINDOW),
        pinned=(
            ACTIVITY_WINDOW,
            MONEY_WINDOW,
            STEPS_WINDOW,
            CLICKS_WINDOW,
            LOOSE_BUCKETS,
            LOOSE_ENDS,
            PREV_WINDOW,
            AGAIN_WINDOW,
        ),
    ),
    Case(
        "funnel_counts of a link",
        lambda c, w: reports.funnel_counts(c, w.space, WINDOW, link_id=w.link),
        pinned=(
            ACTIVITY_WINDOW,
            MONEY_WINDOW,
            STEPS_WINDOW,
            LOOSE_BUCKETS,
            LOOSE_ENDS,
            PREV_WINDOW,
            AGAIN_WINDOW,
        ),
    ),
    Case(
        "funnel_counts of a short window",
        lambda c, w: reports.funnel_counts(c, w.space, SHORT_WINDOW),
        pinned=(STEPS_WINDOW, CLICKS_WINDOW, LOOSE_ENDS),
    ),
    Case(
        "link_rows",
        lambda c, w: reports.link_rows(c, w.space, WINDOW),
        pinned=(
            ACTIVITY_WINDOW,
            MONEY_WINDOW,
            STEPS_WINDOW,
            CLICKS_WINDOW,
            PREV_WINDOW,
            AGAIN_WINDOW,
            r"SEARCH unrecorded_clicks USING PRIMARY KEY"
            r" \(space_id=\? AND hour_ms>\? AND hour_ms<\?\)",
        ),
    ),
    Case(
        "series_counts of clicks",
        lambda c, w: reports.series_counts(c, w.space, "click", [T0, T0 + HOUR], T0 + 2 * HOUR),
        pinned=(CLICKS_WINDOW,),
    ),
    Case(
        "series_counts of a step",
        lambda c, w: reports.series_counts(c, w.space, "deposit", [T0, T0 + HOUR], T0 + 2 * HOUR),
        pinned=(ACTIVITY_WINDOW, STEPS_WINDOW, PREV_WINDOW),
    ),
    Case(
        "series_revenue",
        lambda c, w: reports.series_revenue(c, w.space, "USD", [T0, T0 + HOUR], T0 + 2 * HOUR),
        pinned=(MONEY_WINDOW, STEPS_WINDOW),
    ),
    Case(
        "delivery_health",
        lambda c, w: reports.delivery_health(c, w.space, T0 + HOUR),
        pinned=(
            r"SEARCH a USING INDEX delivery_attempts_space_time \(space_id=\? AND at_ms>\?\)",
            # max() of an index's last column after its equalities: one entry read
            r"SEARCH deliveries USING COVERING INDEX deliveries_report_health"
            r" \(destination_id=\? AND status=\?\)  <-  SELECT max\(sent_ms\)",
        ),
        totals=(r"SELECT status, count\(\*\) FROM deliveries WHERE destination_id",),
    ),
    Case(
        "group_counts (cohort)",
        lambda c, w: groups.group_counts(c, w.space, GroupQuery(WINDOW, ("campaign", "ad"))),
        pinned=(GROUP_CLICKS_WINDOW,),
    ),
    Case(
        "group_counts (activity)",
        lambda c, w: groups.group_counts(
            c, w.space, GroupQuery(WINDOW, ("country",), mode=FunnelMode.ACTIVITY)
        ),
        pinned=(GROUP_CLICKS_WINDOW, GROUP_EVENTS_WINDOW),
    ),
    # housekeeping
    Case(
        "prune_log",
        lambda c, w: postbacks.prune_log(c, T0 + 1, 1000),
        writes=True,
        pinned=(r"SEARCH postback_log USING COVERING INDEX postback_log_time \(at_ms<\?\)",),
    ),
    Case(
        "add_unrecorded",
        lambda c, w: unrecorded.add_unrecorded(
            c, [UnrecordedCount(w.space, w.link, T0, Reason.LIMITED, 1)]
        ),
        writes=True,
    ),
    Case("touch_probe", lambda c, w: probe.touch_probe(c, T0), writes=True),
    Case("unfinished deletions", lambda c, w: deletion.unfinished(c, T0)),
    Case("prune_removals", lambda c, w: deletion.prune_removals(c, 10), writes=True),
    Case("removals_pending", lambda c, w: deletion.removals_pending(c)),
    # deletion's batched steps
    Case("mark_space", lambda c, w: deletion.mark_space(c, w.space, T0), writes=True),
    Case(
        "delete_space_batch",
        lambda c, w: deletion.delete_space_batch(c, w.space),
        writes=True,
        setup=lambda w: deletion.mark_space(w.conn, w.space, T0),
        pinned=(BATCH, BACKLOG_BATCH, FIRST_ROW, DESTINATION_FK),
    ),
    Case("mark_link", lambda c, w: deletion.mark_link(c, w.space, "ad2", T0), writes=True),
    Case(
        "delete_link_batch",
        lambda c, w: deletion.delete_link_batch(c, w.space, w.other_link),
        writes=True,
    ),
    Case(
        "delete_link_batch (the last one)",
        lambda c, w: deletion.delete_link_batch(c, w.space, w.other_link, 5),
        writes=True,
    ),
    Case(
        "mark_destination",
        lambda c, w: deletion.mark_destination(c, w.space, w.destination, T0),
        writes=True,
    ),
    Case(
        "delete_destination_batch",
        lambda c, w: deletion.delete_destination_batch(c, w.space, w.destination),
        writes=True,
        pinned=(BATCH, FIRST_ROW),
    ),
    Case(
        "erase_person (uid)",
        lambda c, w: erasure.erase_person(c, w.space, Person(uid="u1")),
        writes=True,
        pinned=(FIRST_ROW,),
    ),
    Case(
        "erase_person (tg_id)",
        lambda c, w: erasure.erase_person(c, w.space, Person(tg_id=8)),
        writes=True,
    ),
    Case(
        "erase_events",
        # find_tg_events is a read of the space's events by design (store/sqlite/deletion.py)
        lambda c, w: erasure.erase_events(c, w.space, [3], ["u1"]),
        writes=True,
    ),
    Case("delete_log_rows", lambda c, w: erasure.delete_log_rows(c, w.space, [1, 2]), writes=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_hot_query_never_reads_a_whole_space(case: Case, world: World) -> None:
    planned = [p for p in case.plans(world) if not any(re.match(t, p.sql) for t in case.totals)]
    assert planned, "the case ran no statement"
    lines = [f"{line}  <-  {p.sql}" for p in planned for line in p.plan]
    for pin in case.pinned:
        assert any(re.match(pin, line) for line in lines), (
            f"no plan line matches {pin!r}:\n" + "\n".join(map(str, planned))
        )
    walks = [w for w in whole_space_walks(planned) if not any(re.match(p, w) for p in case.pinned)]
    assert not walks, "\n".join(walks)
