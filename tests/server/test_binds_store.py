"""The bind operation on a real SQLite file: the rule of domain/binds.py applied inside the
write (what is stored, which events move), and the space's token-bind setting."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import migrated
from xtracker_server.domain.binds import BindAction, BindKind
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.binds import (
    bind,
    set_token_binds,
    token_binds_allowed,
    uid_for_tg_id,
)
from xtracker_server.store.sqlite.clicks import insert_click
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.inbox import InboxDraft, insert_event

T0 = 1_750_000_000_000
TG, OTHER_TG = 777, 888
BEARER, TOKEN = BindKind.BEARER, BindKind.TOKEN


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, int]]:
    conn = open_db(str(migrated(tmp_path / "b.db")))
    with transaction(conn):
        space = spaces.create_space(conn, "s", T0).space.id
        for uid in ("uid-a", "uid-b"):
            insert_click(conn, ClickDraft(space_id=space, uid=uid, created_ms=T0, source="api"))
    yield conn, space
    conn.close()


def do_bind(
    conn: sqlite3.Connection, space: int, uid: str, tg: int, kind: BindKind, at: int = T0
) -> tuple[BindAction, int]:
    with transaction(conn):
        outcome = bind(conn, space, uid, tg, at, kind)
    return outcome.action, outcome.attributed


def tg_event(conn: sqlite3.Connection, space: int, eid: str, tg: int = TG) -> int:
    with transaction(conn):
        outcome = insert_event(
            conn,
            InboxDraft(space_id=space, dedup_key=eid.encode(), event="deposit", uid=None,
                       tg_id=tg, eid=eid, value="10", currency="USD", occurred_at_ms=T0,
                       received_ms=T0, source="api"),
        )  # fmt: skip
    return outcome.inbox_id


def binds_of(conn: sqlite3.Connection, space: int) -> list[tuple[str, int, str]]:
    rows = conn.execute(
        "SELECT uid, tg_id, kind FROM binds WHERE space_id = ? ORDER BY uid", (space,)
    )
    return [(r["uid"], r["tg_id"], r["kind"]) for r in rows]


def uid_of(conn: sqlite3.Connection, inbox_id: int) -> tuple[str | None, str | None]:
    row = conn.execute("SELECT uid, attributed_by FROM inbox WHERE id = ?", (inbox_id,)).fetchone()
    return row["uid"], row["attributed_by"]


def test_a_token_bind_of_a_bound_user_is_ignored_and_stores_nothing(
    db: tuple[sqlite3.Connection, int],
) -> None:
    conn, space = db
    assert do_bind(conn, space, "uid-a", TG, BEARER) == (BindAction.BIND, 0)
    assert do_bind(conn, space, "uid-b", TG, TOKEN, T0 + 1) == (BindAction.IGNORE, 0)
    assert binds_of(conn, space) == [("uid-a", TG, "bearer")]
    assert uid_for_tg_id(conn, space, TG) == "uid-a"


def test_a_token_bind_never_replaces_another_token_bind(
    db: tuple[sqlite3.Connection, int],
) -> None:
    conn, space = db
    assert do_bind(conn, space, "uid-a", TG, TOKEN) == (BindAction.BIND, 0)
    assert do_bind(conn, space, "uid-b", TG, TOKEN, T0 + 1)[0] is BindAction.IGNORE
    assert uid_for_tg_id(conn, space, TG) == "uid-a"


def test_a_bearer_bind_replaces_a_token_bind_and_takes_the_events_it_attributed(
    db: tuple[sqlite3.Connection, int],
) -> None:
    conn, space = db
    waiting = tg_event(conn, space, "before-any-bind")
    assert do_bind(conn, space, "uid-b", TG, TOKEN) == (BindAction.BIND, 1)
    through_token = tg_event(conn, space, "after-the-token-bind")
    assert uid_of(conn, waiting) == uid_of(conn, through_token) == ("uid-b", "bind")

    assert do_bind(conn, space, "uid-a", TG, BEARER, T0 + 1) == (BindAction.BIND, 2)
    assert binds_of(conn, space) == [("uid-a", TG, "bearer")]
    assert uid_of(conn, waiting) == uid_of(conn, through_token) == ("uid-a", "bind")
    assert uid_for_tg_id(conn, space, TG) == "uid-a"


def test_the_bearer_bind_wins_even_when_its_clock_reads_earlier(
    db: tuple[sqlite3.Connection, int],
) -> None:
    conn, space = db
    do_bind(conn, space, "uid-b", TG, TOKEN, T0 + 5_000)
    assert do_bind(conn, space, "uid-a", TG, BEARER, T0)[0] is BindAction.BIND
    assert uid_for_tg_id(conn, space, TG) == "uid-a"


def test_events_sent_with_a_uid_never_move(db: tuple[sqlite3.Connection, int]) -> None:
    conn, space = db
    do_bind(conn, space, "uid-b", TG, TOKEN)
    with transaction(conn):
        own = insert_event(
            conn,
            InboxDraft(space_id=space, dedup_key=b"own", event="contact", uid="uid-b", tg_id=TG,
                       eid="own", value=None, currency=None, occurred_at_ms=T0, received_ms=T0,
                       source="api"),
        ).inbox_id  # fmt: skip
    assert do_bind(conn, space, "uid-a", TG, BEARER) == (BindAction.BIND, 0)
    assert uid_of(conn, own) == ("uid-b", "request")


def test_the_bot_confirming_a_token_pair_makes_it_a_bearer_bind(
    db: tuple[sqlite3.Connection, int],
) -> None:
    conn, space = db
    do_bind(conn, space, "uid-a", TG, TOKEN)
    assert do_bind(conn, space, "uid-a", TG, BEARER)[0] is BindAction.UNCHANGED
    assert binds_of(conn, space) == [("uid-a", TG, "bearer")]
    assert do_bind(conn, space, "uid-b", TG, TOKEN)[0] is BindAction.IGNORE


def test_a_bearer_bind_takes_a_uid_a_token_bound_to_another_user(
    db: tuple[sqlite3.Connection, int],
) -> None:
    conn, space = db
    squatter_event = tg_event(conn, space, "squatter", tg=OTHER_TG)
    do_bind(conn, space, "uid-a", OTHER_TG, TOKEN)
    assert uid_of(conn, squatter_event) == ("uid-a", "bind")

    assert do_bind(conn, space, "uid-a", TG, BEARER) == (BindAction.BIND, 0)
    assert binds_of(conn, space) == [("uid-a", TG, "bearer")]
    assert uid_of(conn, squatter_event) == (None, None)  # unattributed again
    assert uid_for_tg_id(conn, space, OTHER_TG) is None


def test_bearer_binds_keep_their_rules(db: tuple[sqlite3.Connection, int]) -> None:
    conn, space = db
    do_bind(conn, space, "uid-a", TG, BEARER)
    assert do_bind(conn, space, "uid-a", OTHER_TG, BEARER)[0] is BindAction.CONFLICT
    assert do_bind(conn, space, "uid-b", TG, BEARER, T0 + 1)[0] is BindAction.BIND
    assert uid_for_tg_id(conn, space, TG) == "uid-b"  # the latest click wins
    assert binds_of(conn, space) == [("uid-a", TG, "bearer"), ("uid-b", TG, "bearer")]


def test_a_space_can_turn_token_binds_off_and_on(db: tuple[sqlite3.Connection, int]) -> None:
    conn, space = db
    assert token_binds_allowed(conn, space) is True
    with transaction(conn):
        assert set_token_binds(conn, space, False) is True
        assert set_token_binds(conn, space + 100, False) is False
    assert do_bind(conn, space, "uid-a", TG, TOKEN) == (BindAction.REFUSE, 0)
    assert binds_of(conn, space) == []
    assert do_bind(conn, space, "uid-a", TG, BEARER)[0] is BindAction.BIND
    with transaction(conn):
        set_token_binds(conn, space, True)
    assert do_bind(conn, space, "uid-b", OTHER_TG, TOKEN)[0] is BindAction.BIND
