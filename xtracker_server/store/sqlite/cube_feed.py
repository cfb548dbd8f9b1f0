"""Keeping the report cube (store/sqlite/cube_schema.py) up to date, inside each round of the
rollup's catch-up (store/sqlite/rollup.py), off the write path.

A round marks the uids it changed, by their click's id (``touch``, ``touch_uids``): the uids
of the events it fed, of backlog entries (a bind moved an event off a uid, a click came after
its events), of removals (an erased uid, by the id of the click it had, or event; a deleted
link: every uid of its clicks), and of the clicks it read (``main.clicks`` past its own
watermark: a click counts without events). A uid without a click is in no cube row. The
round copies the marked uids' clicks (``read_marked``); ``apply``, in a transaction of its own
that reads only the rollup's file, then works out each marked uid's share again from scratch
(its click, its rolled-up events in ``report_steps``, which of its deposits ``report_reversed``
pairs with a reversal), and moves the cube rows by the difference to the share it had
(``cube_uids``): old off, new on, summed in Python (store/sqlite/cube_shares.py) and written
with one upsert per row. Whatever changed a uid, the cube stays exact.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from xtracker_server.domain.filters import DIMENSIONS, SUB_ID_PREFIX
from xtracker_server.store.sqlite import cube_shares, cube_write
from xtracker_server.store.sqlite.cube_schema import (
    CUBE_TABLES,
    NAMED,
    UIDS_TABLE,
    H,
)
from xtracker_wire import CANONICAL_EVENTS

__all__ = ["D_DIMENSIONS", "H_DIMENSIONS", "apply", "drop_space", "feed_clicks", "read_marked",
           "take_off", "touch", "touch_uids"]  # fmt: skip

#: The dimensions of the H key.
H_DIMENSIONS = ("link", "campaign", "adset", "ad")
#: Every other click dimension (besides the declared sub-ids) -> its clicks column.
D_DIMENSIONS = {d: ("referrer_domain" if d == "referrer" else c) for d, c in DIMENSIONS.items()
                if d not in H_DIMENSIONS}  # fmt: skip
_EVENTS_IN = "(" + ", ".join(f"'{e}'" for e in CANONICAL_EVENTS) + ")"
_D_NAMES = tuple(sorted(D_DIMENSIONS))
_D_COLUMNS = ", ".join(f"c.{D_DIMENSIONS[d]}" for d in _D_NAMES)


def touch(conn: sqlite3.Connection, select: str, args: Sequence[Any] = ()) -> None:
    """Mark the uids of the clicks (``space_id, click_id``) that ``select`` yields as changed
    in this round."""
    conn.execute(f"INSERT OR IGNORE INTO reports.cube_touched (space_id, click_id) {select}", args)


def touch_uids(conn: sqlite3.Connection, select: str, args: Sequence[Any] = ()) -> None:
    """Mark the uids (``space_id, uid``) that ``select`` yields, those with a click (the others
    are in no cube row; an erased uid's is marked by its removal, ``touch``)."""
    touch(conn, f"SELECT c.space_id, c.id FROM ({select}) AS x CROSS JOIN main.clicks c"
                " ON c.space_id = x.space_id AND c.uid = x.uid", args)  # fmt: skip


def touch_link(conn: sqlite3.Connection, space_id: int, link_id: int) -> None:
    """Mark every uid whose click was on this (deleted) link."""
    touch(conn, "SELECT space_id, click_id FROM reports.cube_uids WHERE space_id = ?"
                " AND link_id = ?", (space_id, link_id))  # fmt: skip


def feed_clicks(
    conn: sqlite3.Connection, where: str, args: Sequence[Any], *, fresh: bool = False
) -> None:
    """The clicks of ``main.clicks`` that match ``where`` (newly read): mark their uids, and
    keep the latest name of their campaign, ad set and ad.

    ``fresh`` (the cube is built, and the round marked every other change first): a click
    that nothing else marked and that has no share yet is *fresh*, and its uid has no steps,
    so ``apply`` does not look them up (a random read of ``report_steps`` per new click, the
    catch-up's largest cost on a large file). Its uid's events fed before it was stored
    would have logged it in ``report_backlog``, and those fed after it marked it (it has a
    share then); a backlog entry read in a later round than the click marks it again then,
    with its steps."""
    real = f"({where}) AND source != 'placeholder'"
    if fresh:  # into cube_schema.FRESH_TABLE
        conn.execute(
            f"INSERT INTO temp.cube_fresh SELECT id FROM main.clicks WHERE {real}"
            " AND id NOT IN (SELECT click_id FROM reports.cube_touched)"
            " AND id NOT IN (SELECT click_id FROM reports.cube_uids)",
            args,
        )
    touch(conn, f"SELECT space_id, id FROM main.clicks WHERE {real}", args)
    for dim, column in NAMED.items():
        id_column = f"{dim}_id"
        conn.execute(
            f"INSERT INTO reports.cube_names SELECT space_id, '{dim}', {id_column}, {column},"
            f" created_ms, id FROM main.clicks WHERE {real} AND {id_column} IS NOT NULL"
            f" AND {column} IS NOT NULL"
            " ON CONFLICT (space_id, dim, id) DO UPDATE SET name = excluded.name,"
            " at_ms = excluded.at_ms, click_id = excluded.click_id"
            " WHERE (excluded.at_ms, excluded.click_id) > (at_ms, click_id)",
            args,
        )


_READ_COLUMNS = ("uid", "created_ms", "link_id", "campaign_id", "adset_id", "ad_id", "sub_ids",
                 *sorted(set(D_DIMENSIONS.values())))  # fmt: skip


def read_marked(conn: sqlite3.Connection) -> None:
    """Copy the marked uids' clicks (``cube_schema.READ_TABLE``), the last read of the main
    file a round's shares need: ``apply(read=False)`` then works in a transaction of its own
    that reads only the rollup's file. A mark copied before (a round cut short) is read
    again."""
    columns = ", ".join(_READ_COLUMNS)
    conn.execute(
        f"INSERT OR REPLACE INTO temp.cube_read (click_id, space_id, {columns})"
        f" SELECT t.click_id, t.space_id, {', '.join(f'c.{c}' for c in _READ_COLUMNS)}"
        " FROM reports.cube_touched t LEFT JOIN main.clicks c ON c.id = t.click_id"
        " AND c.space_id = t.space_id AND c.source != 'placeholder'"
    )


def drop_space(conn: sqlite3.Connection, space_id: int) -> None:
    """Everything of a deleted space."""
    for table in CUBE_TABLES:
        if table != "cube_state":
            conn.execute(f"DELETE FROM reports.{table} WHERE space_id = ?", (space_id,))


#: A uid of the cube: (space_id, its click's id).
Who = tuple[int, int]


#: The marked uids (still marked: a round cut short may have left copies another process
#: applied since) with their clicks' copy (``read_marked``).
_MARKED = "reports.cube_touched t CROSS JOIN temp.cube_read c ON c.click_id = t.click_id"


def _new_shares(conn: sqlite3.Connection, keys: cube_shares.Keys) -> dict[Who, cube_shares.Share]:
    """The share of every marked uid that has a click, worked out from scratch: its keys are
    its H key and its dimensions' (value, link, campaign) keys."""
    key, known = keys.id, keys.known
    shares: dict[Who, cube_shares.Share] = {}
    for row in conn.execute(
        f"SELECT c.space_id, c.click_id, c.created_ms, c.link_id, c.campaign_id, c.adset_id,"
        f" c.ad_id, c.sub_ids, {_D_COLUMNS} FROM {_MARKED} WHERE c.created_ms IS NOT NULL"
    ).fetchall():
        space_id, click_id, created_ms, link_id, campaign, adset, ad, sub_ids = row[:8]
        share_keys = [(H, key(space_id, H, None, link_id, campaign, adset, ad))]
        # in a fixed order (the dimensions', then the sub-ids' sorted): equal shares, equal texts
        valued = [(dim, value) for dim, value in zip(_D_NAMES, row[8:], strict=True)
                  if value is not None]  # fmt: skip
        if sub_ids:
            valued += [(SUB_ID_PREFIX + k, v) for k, v in sorted(json.loads(sub_ids).items())
                       if isinstance(v, str)]  # fmt: skip
        share_keys += [(dim, known.get((space_id, dim, value, link_id, campaign, None, None))
                         or key(space_id, dim, value, link_id, campaign))
                       for dim, value in valued]  # fmt: skip
        shares[(space_id, click_id)] = cube_shares.Share(int(created_ms), share_keys, {})
    steps = conn.execute(
        "SELECT t.space_id, t.click_id, r.event, r.at_ms, r.currency, r.units, r.fraction,"
        " r.scale, r.event = 'deposit' AND EXISTS (SELECT 1 FROM reports.report_reversed v"
        "  WHERE v.space_id = r.space_id AND v.deposit_id = r.inbox_id)"
        f" FROM {_MARKED} CROSS JOIN reports.report_steps r INDEXED BY report_steps_uid"
        " ON r.space_id = c.space_id AND r.uid = c.uid"
        f" WHERE r.event IN {_EVENTS_IN}"
        " AND t.click_id NOT IN (SELECT click_id FROM temp.cube_fresh)"
    )
    for space_id, click_id, event, at_ms, currency, units, fraction, scale, was_reversed in steps:
        share = shares.get((space_id, click_id))
        if share is None:
            continue  # no click: in no group
        first = share.firsts.get(event)
        if first is None or at_ms < first:
            share.firsts[event] = int(at_ms)
        if event != "deposit":
            continue
        share.deposits += 1
        share.reversed += 1 if was_reversed else 0
        if currency is None or units is None:
            continue
        if share.money is None:
            share.money = {}
        m = share.money.setdefault(currency, [0] * 8)
        m[0], m[1], m[2], m[3] = m[0] + 1, m[1] + units, m[2] + fraction, max(m[3], scale)
        if was_reversed:
            m[4], m[5], m[6], m[7] = m[4] + 1, m[5] + units, m[6] + fraction, max(m[7], scale)
    return shares


def take_off(conn: sqlite3.Connection, shares: Sequence[tuple[int, str]]) -> None:
    """Take these shares (``space_id``, its text in ``cube_uids``) off the cube's rows."""
    keys = cube_shares.Keys(conn, sorted({space_id for space_id, _ in shares}))
    deltas = cube_shares.Deltas(keys)
    for space_id, text in shares:
        deltas.add(space_id, cube_shares.Share.of(text), -1)
    cube_write.write(conn, *deltas.derive())
    keys.save()


def key_by_click(conn: sqlite3.Connection) -> int:
    """Format 12's uids (``cube_uids`` keyed by uid) keyed by their click's id, as the current
    format keeps them, in place: the cube's rows stay. A uid whose click is gone (an erasure
    the rollup has not applied yet: its removal does not name the click) has its share taken
    off now, as that removal would. Returns how many uids were kept."""
    taken = conn.execute(
        "DELETE FROM reports.cube_uids WHERE NOT EXISTS (SELECT 1 FROM main.clicks c"
        " WHERE c.space_id = cube_uids.space_id AND c.uid = cube_uids.uid)"
        " RETURNING space_id, state"
    ).fetchall()  # logged for the clicks' counts by its trigger, as apply's deletes are
    take_off(conn, taken)
    conn.execute("ALTER TABLE reports.cube_uids RENAME TO cube_uids_by_uid")  # triggers follow
    conn.execute("DROP INDEX reports.cube_uids_link")
    conn.execute("DROP TABLE reports.cube_touched")  # empty between rounds
    conn.execute(UIDS_TABLE)
    kept = conn.execute(  # the clicks in id order, each finding its uid's row: appended
        "INSERT INTO reports.cube_uids SELECT c.id, u.space_id, u.link_id, u.state"
        " FROM main.clicks c CROSS JOIN reports.cube_uids_by_uid u"
        " ON u.space_id = c.space_id AND u.uid = c.uid"
    ).rowcount
    conn.execute("DROP TABLE reports.cube_uids_by_uid")  # with its triggers
    return int(kept)


def apply(conn: sqlite3.Connection, *, read: bool = True) -> int:
    """Move the cube by the change of every marked uid's share, then forget the marks; returns
    how many uids changed. ``read``: copy the marked clicks first (``read_marked``); without
    it, the copy made before (in the round's first transaction) is what is applied, and this
    reads only the rollup's file."""
    if read:
        read_marked(conn)
    old = {
        (space_id, click_id): (link_id, text)
        for space_id, click_id, link_id, text in conn.execute(
            f"SELECT u.space_id, u.click_id, u.link_id, u.state FROM {_MARKED}"
            " CROSS JOIN reports.cube_uids u ON u.click_id = t.click_id"
        )
    }
    keys = cube_shares.Keys(conn)
    new = _new_shares(conn, keys)
    deltas = cube_shares.Deltas(keys)
    gone: list[Who] = []
    kept: list[tuple[Any, ...]] = []  # (click_id, space_id, its H key, its text)
    keys_text: dict[tuple[tuple[str, int], ...], str] = {}
    for who in old.keys() | new.keys():
        before = old.get(who)
        share = new.get(who)
        text = share.text(keys_text) if share is not None else None
        if before is not None and before[1] == text:
            continue
        if share is None:
            gone.append(who)
        else:
            kept.append((who[1], who[0], share.keys[0][1], text))
        if before is None:
            deltas.add(who[0], share, +1)  # type: ignore[arg-type]  # one of them is there
        elif share is None:
            deltas.add(who[0], cube_shares.Share.of(before[1]), -1)
        else:
            deltas.move(who[0], cube_shares.Share.of(before[1]), share)
    cube_write.write(conn, *deltas.derive())
    keys.save()
    conn.executemany("DELETE FROM reports.cube_uids WHERE click_id = ?",
                     sorted((click_id,) for _, click_id in gone))  # fmt: skip
    conn.executemany(  # in click order: a new click's row goes at the end
        "INSERT INTO reports.cube_uids VALUES (?, ?, (SELECT link_id FROM reports.cube_keys"
        " WHERE id = ?), ?) ON CONFLICT (click_id) DO UPDATE SET link_id = excluded.link_id,"
        " state = excluded.state",
        sorted(kept),
    )
    conn.execute("DELETE FROM reports.cube_touched WHERE click_id IN"
                 " (SELECT click_id FROM temp.cube_read)")  # fmt: skip
    conn.execute("DELETE FROM temp.cube_read")
    conn.execute("DELETE FROM temp.cube_fresh")
    return len(gone) + len(kept)
