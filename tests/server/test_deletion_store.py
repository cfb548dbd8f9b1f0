"""Deleting spaces, links and destinations and erasing a person, on real SQLite files through
the store operations and the plans the server and the CLI run (``deletion.run``): what is
said before, what is removed, what remains, and that other spaces and the reports (against the
brute-force oracle of test_reports_store.py) are untouched or consistent."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from tests.databases import migrated
from tests.server.test_reports_store import (
    STEPS,
    WINDOWS,
    Ev,
    World,
    _expected,
    build_world,
)
from xtracker_server import deletion
from xtracker_server.domain.binds import BindKind
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.credentials import CredentialKind, hash_secret
from xtracker_server.domain.deletion import ERASURE_KEYS, Person
from xtracker_server.domain.destinations import DestinationInput, prepare_destination
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.reports import Window
from xtracker_server.domain.unrecorded import Reason, UnrecordedCount
from xtracker_server.store.sqlite import deletion as store
from xtracker_server.store.sqlite import (
    destinations,
    erasure,
    links,
    outbox,
    postbacks,
    spaces,
)
from xtracker_server.store.sqlite import reports as report_store
from xtracker_server.store.sqlite.binds import bind
from xtracker_server.store.sqlite.clicks import insert_click
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_event
from xtracker_server.store.sqlite.rollup import catch_up
from xtracker_server.store.sqlite.runtime import Store
from xtracker_server.store.sqlite.unrecorded import add_unrecorded

T0 = 1_750_000_000_000
H = 3_600_000
#: Every table that holds a space's rows (a new one must be deleted with its space).
SPACE_TABLES = ("credentials", "links", "clicks", "inbox", "binds", "destinations", "deliveries",
                "delivery_attempts", "postback_aliases", "postback_log",
                "unrecorded_clicks", "costs", "exchange_rates")  # fmt: skip


@dataclass
class Filled:
    space: int
    bearer: str
    link: int
    destinations: list[int]


def _event(conn: sqlite3.Connection, space: int, key: str, **kw: Any) -> int:
    draft = InboxDraft(
        space_id=space, dedup_key=f"{space}:{key}".encode(), event=kw.get("event", "contact"),
        uid=kw.get("uid"), tg_id=kw.get("tg_id"), eid=key, value=kw.get("value"),
        currency=kw.get("currency"), occurred_at_ms=kw.get("at", T0), received_ms=T0,
        source="api",
    )  # fmt: skip
    return insert_event(conn, draft).inbox_id


def _log(conn: sqlite3.Connection, space: int, query: str, uid: str | None = None) -> int:
    entry = postbacks.LogEntry(space_id=space, at_ms=T0, ip="192.0.2.1", method="GET",
                               query=query, body=None, outcome="queued", uid=uid)  # fmt: skip
    return postbacks.log_postback(conn, entry)


def fill(conn: sqlite3.Connection, name: str) -> Filled:
    """A space with a bit of everything. Both spaces of a test use the same uids and tg_ids."""
    created = spaces.create_space(conn, name, T0)
    space = created.space.id
    spaces.rotate_credential(conn, space, CredentialKind.BEARER, T0)
    link = links.create_link(
        conn, space, f"{name}-l", LinkSpec(kind=LinkKind.BOT, target="my_bot"), T0
    )
    dests = []
    for url in ("https://a.example/h", "https://b.example/h"):
        prepared = prepare_destination(DestinationInput.model_validate({"kind": "webhook",
                                                                        "url": url}))  # fmt: skip
        made = destinations.create_destination(conn, space, prepared, T0)
        assert made is not None
        dests.append(made.id)
    postbacks.set_alias(conn, space, "status", "ftd2", "deposit", T0)
    for n in range(1, 7):  # u1..u5 clicked the link, u6 came through the API without one
        draft = ClickDraft(space_id=space, uid=f"u{n}", created_ms=T0 + n, source="landing",
                           link_id=link.id if n < 6 else None, ip="198.51.100.7")  # fmt: skip
        insert_click(conn, draft)
    bind(conn, space, "u1", 100, T0)  # the user 100 came twice: u1, then u2
    bind(conn, space, "u2", 100, T0 + 1)
    bind(conn, space, "u3", 300, T0, BindKind.TOKEN)
    _event(conn, space, "a", uid="u1", event="registration", at=T0 + H)
    _event(
        conn, space, "b", uid="u1", event="deposit", value="10.00", currency="USD", at=T0 + 2 * H
    )
    _event(conn, space, "c", uid="u2", event="deposit", value="5.50", currency="USD", at=T0 + 3 * H)
    _event(conn, space, "d", tg_id=100, event="subscribed", at=T0 + 4 * H)  # -> u2 (latest)
    _event(conn, space, "e", tg_id=999, event="contact", at=T0 + 4 * H)  # unattributed
    _event(conn, space, "f", uid="u5", tg_id=100, event="deposit", value="1", currency="EUR")
    for n in range(3, 7):
        _event(conn, space, f"g{n}", uid=f"u{n}", event="contact", at=T0 + n * H)
    # half the deliveries went out, with an attempt each
    sent = conn.execute(
        "SELECT id FROM deliveries WHERE space_id = ? AND inbox_id % 2 = 0", (space,)
    ).fetchall()
    for (delivery_id,) in sent:
        conn.execute("UPDATE deliveries SET status = 'sent' WHERE id = ?", (delivery_id,))
        outbox.record_attempt(conn, outbox.AttemptRecord(delivery_id, space, T0, 200, 5, "sent",
                                                         None, "ok u1"))  # fmt: skip
    _log(conn, space, "token=xt_it_…abcd&status=ftd&uid=u1&payout=10", uid="u1")
    _log(conn, space, "token=xt_it_…abcd&status=reg&sub1=u2")  # u2 under an alias, no uid column
    _log(conn, space, "token=xt_it_…abcd&status=reg&tg_id=100")
    _log(conn, space, "token=xt_it_…abcd&status=reg&uid=u1x&tg_id=1000")  # neither of them
    _log(conn, space, "token=xt_it_…abcd&status=reg&uid=u4", uid="u4")
    add_unrecorded(conn, [UnrecordedCount(space, link.id, T0, Reason.BOT, 4),
                          UnrecordedCount(space, link.id, T0, Reason.LIMITED, 1)])  # fmt: skip
    return Filled(space, created.bearer, link.id, dests)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, str, Filled, Filled]]:
    path = str(migrated(tmp_path / "x.db"))
    conn = open_db(path)
    with transaction(conn):
        a, b = fill(conn, "a"), fill(conn, "b")
    yield conn, path, a, b
    conn.close()


def rows_of(conn: sqlite3.Connection, space: int) -> dict[str, int]:
    return {
        t: conn.execute(f"SELECT count(*) FROM {t} WHERE space_id = ?", (space,)).fetchone()[0]
        for t in SPACE_TABLES
    }


def run(conn: sqlite3.Connection, path: str, plan: deletion.Plan[Any]) -> Any:
    """The plan, as the server and the CLI run it: on a store of the file (``deletion.run``),
    next to the test's own connection ``conn``."""

    async def on_a_store() -> Any:
        opened = Store(path, writer_process=False)
        await opened.open()
        try:
            return await deletion.run(opened, plan)
        finally:
            await opened.close()

    return asyncio.run(asyncio.wait_for(on_a_store(), 60))


def read(conn: sqlite3.Connection, op: Any, *args: Any) -> Any:
    conn.execute("BEGIN")
    try:
        return op(conn, *args)
    finally:
        conn.execute("COMMIT")


def write(conn: sqlite3.Connection, op: Any, *args: Any) -> Any:
    with transaction(conn):
        return op(conn, *args)


# ----------------------------------------------------------------------------- spaces


def test_a_space_deletion_says_what_it_takes_and_takes_exactly_that(db: Any) -> None:
    conn, path, a, b = db
    theirs = rows_of(conn, b.space)
    before = read(conn, store.space_counts, a.space)
    assert before == {
        "credentials": 3, "links": 1, "destinations": 2, "postback_aliases": 1, "clicks": 6,
        "events": 10, "binds": 3, "postback_log": 5, "unrecorded_clicks": 2,
        "deliveries_pending": before["deliveries_pending"],
        "deliveries_sent": before["deliveries_sent"], "deliveries_failed": 0,
        "delivery_attempts": before["deliveries_sent"], "costs": 0, "exchange_rates": 0,
    }  # fmt: skip
    assert before["deliveries_pending"] + before["deliveries_sent"] == 2 * 10
    marked = write(conn, store.mark_space, a.space, T0)
    assert marked.removed == {"credentials": 3}
    # gone for every reader at once, and its secrets stop working
    assert read(conn, spaces.get_space, a.space) is None
    assert [s.id for s in read(conn, spaces.list_spaces)] == [b.space]
    assert read(conn, links.resolve_slug, "a-l") is None
    assert read(conn, destinations.list_destinations, a.space) == []
    assert read(conn, spaces.find_credential, _hash(a.bearer), T0) is None
    removed = run(conn, path, deletion.delete_space(marked, batch=7))
    assert removed == before
    assert rows_of(conn, a.space) == dict.fromkeys(SPACE_TABLES, 0)
    assert rows_of(conn, b.space) == theirs
    assert read(conn, spaces.find_credential, _hash(b.bearer), T0) is not None
    # deleted: there is nothing to delete any more, and its id is never given out again
    assert write(conn, store.mark_space, a.space, T0) is None
    assert read(conn, store.space_counts, a.space) is None
    new = write(conn, spaces.create_space, "c", T0).space.id
    assert new > a.space


def _hash(secret: str) -> bytes:
    return hash_secret(secret)


def test_each_batch_of_a_space_deletion_is_bounded(db: Any) -> None:
    conn, _, a, _ = db
    total = sum(read(conn, store.space_counts, a.space).values())
    write(conn, store.mark_space, a.space, T0)
    batches = 0
    while True:
        batch = write(conn, store.delete_space_batch, a.space, 5)
        batches += 1
        assert sum(batch.removed.values()) <= 5
        assert batches <= total + 1, "a batch that removes nothing and is not done"
        if batch.done:
            break
    assert batches >= (total - 3) // 5
    assert rows_of(conn, a.space) == dict.fromkeys(SPACE_TABLES, 0)


def test_a_space_deletion_cut_short_is_finished_by_the_next_one(db: Any) -> None:
    conn, path, a, _ = db
    total = sum(read(conn, store.space_counts, a.space).values())
    write(conn, store.mark_space, a.space, T0)
    write(conn, store.delete_space_batch, a.space, 10)
    assert read(conn, store.unfinished, T0) == []  # not while it may be running elsewhere
    assert read(conn, store.unfinished, T0 + 1) == [("space", a.space, a.space)]
    left = read(conn, store.space_counts, a.space)
    # the mark took the credentials, the batch 10 rows
    assert sum(left.values()) == total - 3 - 10
    marked = write(conn, store.mark_space, a.space, T0 + 1)
    assert run(conn, path, deletion.delete_space(marked)) == left
    assert read(conn, store.unfinished, T0 + 1) == []


def test_deleting_the_newest_rows_keeps_their_ids_from_being_handed_out_again(db: Any) -> None:
    """The rollup and the live stream follow clicks, inbox and attempts by id: a deleted
    newest row leaves a placeholder, seen by nobody."""
    conn, path, a, b = db
    with transaction(conn):  # space a holds the newest row of each table
        insert_click(conn, ClickDraft(space_id=a.space, uid="new", created_ms=T0, source="api"))
        inbox_id = _event(conn, a.space, "new", uid="new")
        delivery = conn.execute(
            "SELECT id FROM deliveries WHERE inbox_id = ?", (inbox_id,)
        ).fetchone()[0]
        outbox.record_attempt(conn, outbox.AttemptRecord(delivery, a.space, T0, 500, 5, "retry",
                                                         "HTTP 500", None))  # fmt: skip
    tables = ("clicks", "inbox", "delivery_attempts")
    tops = [_top(conn, t) for t in tables]
    run(conn, path, deletion.delete_space(write(conn, store.mark_space, a.space, T0), batch=3))
    after = [_top(conn, t) for t in tables]
    assert all(now >= top for now, top in zip(after, tops, strict=True)), (after, tops)
    with transaction(conn):
        assert _event(conn, b.space, "later", uid="u1") > tops[1]
        insert_click(conn, ClickDraft(space_id=b.space, uid="later", created_ms=T0, source="api"))
    assert _top(conn, "clicks") > tops[0]
    # the placeholders hold nothing of anybody, in a space nobody sees
    holder = conn.execute("SELECT space_id FROM inbox WHERE id = ?", (after[1],)).fetchone()[0]
    assert holder not in (a.space, b.space)
    assert read(conn, spaces.get_space, holder) is None
    assert read(conn, store.space_counts, holder) is None
    assert [s.id for s in read(conn, spaces.list_spaces)] == [b.space]
    assert read(conn, store.unfinished, T0 + 1) == []
    for table, top in zip(tables, after, strict=True):
        row = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (top,)).fetchone()
        assert row["space_id"] == holder, table
    row = conn.execute("SELECT uid, tg_id, value FROM inbox WHERE id = ?", (after[1],)).fetchone()
    assert tuple(row) == (None, None, None)


def _top(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0])


def test_every_table_with_a_space_id_goes_with_its_space(db: Any) -> None:
    """A table added later with tenant rows must be deleted with its space too."""
    conn = db[0]
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    with_space = {
        t for t in tables
        if any(c[1] == "space_id" for c in conn.execute(f"PRAGMA table_info({t})"))
    }  # fmt: skip
    # the report backlog and removals are the rollup's queue (their uids are blanked or pruned);
    # delivery_counts is kept by triggers on deliveries, and its rows go with the last delivery
    exempt = {"report_backlog", "report_removals", "delivery_counts"}
    assert with_space - exempt == set(SPACE_TABLES)
    assert {t for _, t in store._SPACE_ROWS} == set(SPACE_TABLES)


# ----------------------------------------------------------------------------- links


def test_a_deleted_link_keeps_its_clicks_and_events_under_no_link(tmp_path: Path) -> None:
    world = build_world(str(tmp_path / "r.db"))
    conn, path = world.conn, str(tmp_path / "r.db")
    gone = world.link_ids[0]
    slug = "l0"
    clicks = sum(1 for _, link, _ in world.clicks if link == gone)
    before = read(conn, store.link_counts, world.space, slug)
    assert before["links"] == 1 and before["clicks_unlinked"] == clicks > 0
    assert before["events_unlinked"] == sum(
        1 for e in world.events if e.uid is not None and world.link_of.get(e.uid) == gone
    )
    marked = write(conn, store.mark_link, world.space, slug, T0)
    assert read(conn, links.resolve_slug, slug) is None  # its landing answers 404 from now on
    assert read(conn, links.link_by_slug, world.space, slug) is None
    assert run(conn, path, deletion.delete_link(world.space, marked, batch=4)) == before
    assert conn.execute("SELECT count(*) FROM links WHERE id = ?", (gone,)).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM clicks WHERE link_id = ?", (gone,)).fetchone()[0] == 0
    # the oracle: those uids now have no link; the space's totals do not move
    world.clicks = [(u, None if link == gone else link, c) for u, link, c in world.clicks]
    world.link_of = {u: None if link == gone else link for u, link in world.link_of.items()}
    _check_reports(world, per_link=("l1", "l2"))
    # a new link may take the slug (and, SQLite being SQLite, maybe the id)
    spec = LinkSpec(kind=LinkKind.BOT, target="b_bot")
    write(conn, links.create_link, world.space, slug, spec, T0)
    conn.close()


def test_a_deleted_link_takes_its_counts_of_unrecorded_visits(tmp_path: Path) -> None:
    world = build_world(str(tmp_path / "r.db"))
    conn, path = world.conn, str(tmp_path / "r.db")
    gone, kept = world.link_ids[0], world.link_ids[1]
    with transaction(conn):
        add_unrecorded(conn, [UnrecordedCount(world.space, gone, 0, Reason.BOT, 3),
                              UnrecordedCount(world.space, gone, H, Reason.LIMITED, 2),
                              UnrecordedCount(world.space, kept, 0, Reason.BOT, 5)])  # fmt: skip
    before = read(conn, store.link_counts, world.space, "l0")
    assert before["unrecorded_clicks"] == 2
    marked = write(conn, store.mark_link, world.space, "l0", T0)
    assert run(conn, path, deletion.delete_link(world.space, marked, batch=4)) == before
    left = conn.execute("SELECT link_id, count FROM unrecorded_clicks").fetchall()
    assert [tuple(r) for r in left] == [(kept, 5)]
    conn.close()


def _check_reports(world: World, per_link: tuple[str, ...] = ("l0", "l1", "l2")) -> None:
    catch_up(world.conn)
    for win in WINDOWS:
        got = report_store.funnel_counts(world.conn, world.space, win)
        want = _expected(world, win)
        assert {s: got.uids.get(s, 0) for s in ("click", *STEPS)} == want["uids"]
        assert (got.deposits, got.first_deposits) == (want["deposits"], want["first"])
        assert got.revenue == want["revenue"]
        assert got.unattributed == want["unattributed"]
        assert got.unattributed_revenue == want["unattributed_revenue"]
        rows = {r.link: r for r in report_store.link_rows(world.conn, world.space, win)}
        assert set(rows) - {None} == set(per_link)
        ids = dict(zip(("l0", "l1", "l2"), world.link_ids, strict=True))
        for slug in per_link:
            mine = _uids(_expected(world, win, ids[slug]))
            assert rows[slug].clicks == mine["click"]
            assert {s: rows[slug].uids.get(s, 0) for s in STEPS} == {s: mine[s] for s in STEPS}
        per_step = {s: sum(r.uids.get(s, 0) for r in rows.values()) for s in STEPS}
        every = _expected(world, win, clicked=False)  # "no link" also has uids without a click
        assert per_step == {s: _uids(every)[s] for s in STEPS}
        assert sum(r.clicks for r in rows.values()) == _uids(want)["click"]
    starts = [T0 + i * 12 * H for i in range(6)]
    series = report_store.series_counts(world.conn, world.space, "deposit", starts, T0 + 72 * H)
    assert series == [
        _uids(_expected(world, Window(start, start + 12 * H)))["deposit"]  # as the funnel
        for start in starts
    ]


def _uids(expected: dict[str, object]) -> dict[str, int]:
    return cast(dict[str, int], expected["uids"])


# ----------------------------------------------------------------------------- destinations


def test_a_deleted_destination_takes_its_deliveries_pending_ones_unsent(db: Any) -> None:
    conn, path, a, b = db
    gone, stays = a.destinations
    statuses = dict(conn.execute(
        "SELECT status, count(*) FROM deliveries WHERE destination_id = ? GROUP BY status", (gone,)
    ).fetchall())  # fmt: skip
    before = read(conn, store.destination_counts, a.space, gone)
    assert before == {
        "destinations": 1, "deliveries_pending": statuses["pending"],
        "deliveries_sent": statuses["sent"], "deliveries_failed": 0,
        "delivery_attempts": statuses["sent"],
    }  # fmt: skip
    kept = conn.execute("SELECT count(*) FROM deliveries WHERE destination_id = ?", (stays,))
    kept_n = kept.fetchone()[0]
    theirs = rows_of(conn, b.space)
    marked = write(conn, store.mark_destination, a.space, gone, T0)
    with transaction(conn):  # an event after the mark is not routed to it
        _event(conn, a.space, "after", uid="u1")
    assert [d.id for d in read(conn, destinations.list_destinations, a.space)] == [stays]
    assert run(conn, path, deletion.delete_destination(a.space, marked, batch=4)) == before
    left = conn.execute("SELECT count(*) FROM deliveries WHERE destination_id = ?", (gone,))
    assert left.fetchone()[0] == 0
    kept = conn.execute("SELECT count(*) FROM deliveries WHERE destination_id = ?", (stays,))
    assert kept.fetchone()[0] == kept_n + 1
    assert rows_of(conn, b.space) == theirs
    assert read(conn, store.mark_destination, a.space, gone, T0) is None


def test_another_spaces_path_deletes_nothing(db: Any) -> None:
    conn, _, a, b = db
    assert write(conn, store.mark_destination, a.space, b.destinations[0], T0) is None
    assert write(conn, store.mark_link, a.space, "b-l", T0) is None
    assert read(conn, links.resolve_slug, "b-l") is not None
    assert len(read(conn, destinations.list_destinations, b.space)) == 2


def test_a_worker_that_settles_a_deleted_delivery_records_nothing(db: Any) -> None:
    conn, path, a, _ = db
    delivery = conn.execute("SELECT id FROM deliveries WHERE space_id = ?", (a.space,)).fetchone()[
        0
    ]
    run(conn, path, deletion.delete_space(write(conn, store.mark_space, a.space, T0)))
    record = outbox.AttemptRecord(delivery, a.space, T0, 200, 5, "sent", None, None)
    write(conn, outbox.record_attempt, record)  # not an error: the delivery is gone
    attempts = conn.execute("SELECT count(*) FROM delivery_attempts WHERE delivery_id = ?",
                            (delivery,))  # fmt: skip
    assert attempts.fetchone()[0] == 0


# ----------------------------------------------------------------------------- erasure


def _anywhere(conn: sqlite3.Connection, space: int, needle: str) -> list[str]:
    """The tables where the space still holds ``needle`` (a uid, a tg_id) in any column."""
    found = []
    for table in (*SPACE_TABLES, "report_backlog", "report_removals"):
        for row in conn.execute(f"SELECT * FROM {table} WHERE space_id = ?", (space,)):
            values = [str(v) for v in tuple(row)]
            if any(v == needle or f"={needle}&" in v + "&" for v in values):
                found.append(table)
    return found


def test_erasing_a_uid_takes_it_from_everywhere_in_its_space_only(db: Any) -> None:
    conn, path, a, b = db
    theirs = rows_of(conn, b.space)
    person = Person(uid="u1")
    before = read(conn, erasure.erasure_counts, a.space, person)
    deliveries = conn.execute(
        "SELECT status, count(*) FROM deliveries WHERE space_id = ? AND inbox_id IN"
        " (SELECT id FROM inbox WHERE space_id = ? AND uid = 'u1') GROUP BY status",
        (a.space, a.space),
    ).fetchall()
    assert before == {
        "clicks": 1, "events": 2, "binds": 1, "postback_log": 1,
        "deliveries_pending": dict(deliveries).get("pending", 0),
        "deliveries_sent": dict(deliveries).get("sent", 0), "deliveries_failed": 0,
        "delivery_attempts": dict(deliveries).get("sent", 0),
    }  # fmt: skip
    assert "inbox" in _anywhere(conn, a.space, "u1")
    assert run(conn, path, deletion.erase(a.space, person, batch=1)) == before
    assert _anywhere(conn, a.space, "u1") == []
    assert "clicks" in _anywhere(conn, b.space, "u1")  # the other space's u1 is someone else
    assert rows_of(conn, b.space) == theirs
    # the user 100 keeps what was not u1's
    binds = conn.execute("SELECT uid FROM binds WHERE space_id = ? AND tg_id = 100", (a.space,))
    assert [r[0] for r in binds] == ["u2"]
    assert read(conn, erasure.erasure_counts, a.space, person) == dict.fromkeys(ERASURE_KEYS, 0)


def test_erasing_a_tg_id_takes_every_uid_bound_to_it_and_its_events(db: Any) -> None:
    conn, path, a, b = db
    theirs = rows_of(conn, b.space)
    person = Person(tg_id=100)
    before = read(conn, erasure.erasure_counts, a.space, person)
    # u1 and u2 (bound to 100): 3 clicks? no: 2 clicks, their 3 events, the tg_id-only event
    # attributed to u2, and the deposit sent with uid u5 and tg_id 100; both binds; the log
    # rows naming u1, u2 (as sub1) and tg_id 100
    assert {k: before[k] for k in ("clicks", "events", "binds", "postback_log")} == {
        "clicks": 2,
        "events": 5,
        "binds": 2,
        "postback_log": 3,
    }
    removed = run(conn, path, deletion.erase(a.space, person, batch=2))
    assert removed == before
    for needle in ("u1", "u2", "100"):
        assert _anywhere(conn, a.space, needle) == [], needle
    # u5 keeps its click and its other event; the unattributed event of user 999 stays
    assert conn.execute("SELECT count(*) FROM inbox WHERE space_id = ? AND uid = 'u5'",
                        (a.space,)).fetchone()[0] == 1  # fmt: skip
    assert conn.execute("SELECT count(*) FROM inbox WHERE space_id = ? AND tg_id = 999",
                        (a.space,)).fetchone()[0] == 1  # fmt: skip
    assert conn.execute("SELECT count(*) FROM postback_log WHERE space_id = ? AND query LIKE"
                        " '%tg_id=1000%'", (a.space,)).fetchone()[0] == 1  # fmt: skip
    assert rows_of(conn, b.space) == theirs


def test_an_erasure_in_a_space_being_deleted_or_unknown_finds_no_space(db: Any) -> None:
    conn, path, a, _ = db
    assert run(conn, path, deletion.erase(999, Person(uid="u1"))) is None
    write(conn, store.mark_space, a.space, T0)
    assert run(conn, path, deletion.erase(a.space, Person(uid="u1"))) is None


@pytest.mark.parametrize("rolled_up", [True, False], ids=["after-rollup", "before-rollup"])
def test_reports_after_an_erasure_equal_a_brute_force_count(
    tmp_path: Path, rolled_up: bool
) -> None:
    path = str(tmp_path / "r.db")
    world = build_world(path)
    conn = world.conn
    if not rolled_up:  # events and moves the rollup has not seen yet when the erasure comes
        with transaction(conn):
            for k in range(4):
                ev = Ev(world.clicks[20 + k][0], None, "deposit", T0 + 5 * H + k, "7.25", "USD")
                _world_event(world, 900 + k, ev)
    # by uid: a uid with events; by tg_id: a user whose events a bearer bind moved (5005), one
    # bound plainly (5001), and one never bound, whose events have no uid (5009: the funnel's
    # line of them loses them)
    with_events = next(e.uid for e in world.events if e.uid is not None and e.event == "deposit")
    loose = [e for e in world.events if e.tg_id == 5009]
    assert loose and all(e.uid is None for e in loose)
    erased: set[str] = set()
    people = (Person(uid=with_events), Person(tg_id=5005), Person(tg_id=5001), Person(tg_id=5009))
    for person in people:
        uids = {with_events} if person.uid else {
            r[0] for r in conn.execute("SELECT uid FROM binds WHERE space_id = ? AND tg_id = ?",
                                       (world.space, person.tg_id))
        }  # fmt: skip
        assert uids or person.tg_id == 5009
        run(conn, path, deletion.erase(world.space, person))
        erased |= uids
        world.events = [
            e for e in world.events
            if e.uid not in uids and (person.tg_id is None or e.tg_id != person.tg_id)
        ]  # fmt: skip
        world.clicks = [c for c in world.clicks if c[0] not in uids]
        for uid in uids:
            world.link_of.pop(uid, None)
        _check_reports(world)
    marks = ", ".join("?" * len(erased))
    left = conn.execute(
        f"SELECT count(*) FROM report_steps WHERE space_id = ? AND uid IN ({marks})",
        (world.space, *erased),
    )
    assert left.fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM report_removals").fetchone()[0] == 0  # pruned
    # the other space, with the same uids, is untouched
    other = report_store.funnel_counts(conn, world.other, Window(T0 - 48 * H, T0 + 96 * H))
    assert other.uids["contact"] == 120
    # and an erased uid that comes back later is counted again
    with transaction(conn):
        _world_event(world, 999, Ev(with_events, None, "deposit", T0 + 6 * H, "3", "USD"))
    _check_reports(world)
    # also when it comes back before the rollup has applied its erasure
    again = next(e.uid for e in world.events if e.uid is not None and e.uid not in erased)
    write(conn, erasure.erase_person, world.space, Person(uid=again))
    world.events = [e for e in world.events if e.uid != again]
    world.clicks = [c for c in world.clicks if c[0] != again]
    world.link_of.pop(again, None)
    with transaction(conn):
        _world_event(world, 998, Ev(again, None, "contact", T0 + 7 * H))
    _check_reports(world)
    conn.close()


def _world_event(world: World, n: int, ev: Ev) -> None:
    from tests.server.test_reports_store import _event as reports_event

    reports_event(world.conn, world.space, 10_000 + n, ev)
    world.events.append(ev)


def test_a_space_deletion_leaves_nothing_in_the_reports(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    world = build_world(path)
    conn = world.conn
    assert conn.execute("SELECT count(*) FROM report_steps WHERE space_id = ?",
                        (world.space,)).fetchone()[0] > 0  # fmt: skip
    marked = write(conn, store.mark_space, world.space, T0)
    run(conn, path, deletion.delete_space(marked, batch=50))
    assert conn.execute("SELECT count(*) FROM report_steps WHERE space_id = ?",
                        (world.space,)).fetchone()[0] == 0  # fmt: skip
    assert conn.execute("SELECT count(*) FROM report_steps WHERE space_id = ?",
                        (world.other,)).fetchone()[0] == 120  # fmt: skip
    assert not conn.execute("SELECT count(*) FROM report_backlog WHERE space_id = ?"
                            " AND uid IS NOT NULL", (world.space,)).fetchone()[0]  # fmt: skip
    assert conn.execute("SELECT count(*) FROM report_removals").fetchone()[0] == 0
    conn.close()


def test_the_server_finishes_deletions_left_half_done(db: Any) -> None:
    """A crash between two batches: the server's housekeeping finishes the deletions marked
    long enough ago, and forgets what the report rollup applied."""
    conn, path, a, b = db
    write(conn, store.mark_space, a.space, T0)
    write(conn, store.delete_space_batch, a.space, 5)
    write(conn, store.mark_link, b.space, "b-l", T0)
    write(conn, store.mark_destination, b.space, b.destinations[0], T0)
    write(conn, erasure.erase_person, b.space, Person(uid="u4"))  # its rollup step never ran
    later = T0 + deletion.UNFINISHED_AFTER_MS + 1

    async def housekeeping() -> tuple[int, int]:
        server = Store(path, writer_process=False)
        await server.open()
        try:
            early = await deletion.finish_unfinished(server, T0 + 1)
            return early, await deletion.finish_unfinished(server, later)
        finally:
            await server.close()

    assert asyncio.run(asyncio.wait_for(housekeeping(), 60)) == (0, 3)
    assert read(conn, store.unfinished, later) == []
    assert rows_of(conn, a.space) == dict.fromkeys(SPACE_TABLES, 0)
    assert conn.execute("SELECT count(*) FROM links WHERE slug = 'b-l'").fetchone()[0] == 0
    gone = conn.execute("SELECT count(*) FROM deliveries WHERE destination_id = ?",
                        (b.destinations[0],))  # fmt: skip
    assert gone.fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM report_removals").fetchone()[0] == 0
