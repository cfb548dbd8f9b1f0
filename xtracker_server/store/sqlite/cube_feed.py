"""Keeping the report cube (store/sqlite/cube_schema.py) up to date, inside each round of the
rollup's catch-up (store/sqlite/rollup.py), off the write path.

A round marks the uids it changed (``touch_*``): the uids of the events it fed, of backlog
entries (a bind moved an event off a uid, a click came after its events), of removals (an
erased uid or event; a deleted link: every uid of its clicks), and of the clicks it read
(``main.clicks`` past its own watermark: a click counts without events). ``apply`` then works
out each marked uid's share again from scratch (its click, its rolled-up events in
``report_steps``, which of its deposits ``report_reversed`` pairs with a reversal), and moves
the cube rows by the difference to the share it had (``cube_uids``): old off, new on, summed in
Python and written with one upsert per row. Whatever changed a uid, the cube stays exact.
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from xtracker_server.domain.filters import DIMENSIONS, SUB_ID_PREFIX
from xtracker_server.domain.groups import TTC_BOUNDS_S
from xtracker_server.store.sqlite.cube_schema import (
    ALL,
    COUNTS,
    CUBE_TABLES,
    DIMENSION_LEVELS,
    LEVEL_MS,
    LEVELS,
    NAMED,
    PAIRS,
    TTC_COLUMNS,
    H,
)
from xtracker_wire import CANONICAL_EVENTS

__all__ = ["D_DIMENSIONS", "H_DIMENSIONS", "apply", "drop_space", "feed_clicks", "touch"]

#: The dimensions of the H key.
H_DIMENSIONS = ("link", "campaign", "adset", "ad")
#: Every other click dimension (besides the declared sub-ids) -> its clicks column.
D_DIMENSIONS = {d: ("referrer_domain" if d == "referrer" else c) for d, c in DIMENSIONS.items()
                if d not in H_DIMENSIONS}  # fmt: skip
_BOUNDS_MS = [b * 1000 for b in TTC_BOUNDS_S]
_STEPS = CANONICAL_EVENTS
_EVENTS_IN = "(" + ", ".join(f"'{e}'" for e in _STEPS) + ")"
_D_COLUMNS = ", ".join(f"c.{c}" for c in D_DIMENSIONS.values())

#: (0: the H and whole-space rows, 1: a dimension's; level; bucket length): what each kind of
#: row is kept at (cube_schema.LEVELS).
_LEVELS = tuple((0, level, LEVEL_MS[level]) for level in LEVELS[H]) + tuple(
    (1, level, LEVEL_MS[level]) for level in DIMENSION_LEVELS
)
assert LEVELS[H] == LEVELS[ALL]
#: 2**32: the high bin of a packed pair of TTC columns.
_HIGH = 1 << 32


def touch(conn: sqlite3.Connection, select: str, args: Sequence[Any] = ()) -> None:
    """Mark the uids (``space_id, uid``) that ``select`` yields as changed in this round."""
    conn.execute(f"INSERT OR IGNORE INTO reports.cube_touched {select}", args)


def touch_link(conn: sqlite3.Connection, space_id: int, link_id: int) -> None:
    """Mark every uid whose click was on this (deleted) link."""
    touch(conn, "SELECT space_id, uid FROM reports.cube_uids WHERE space_id = ? AND link_id = ?",
          (space_id, link_id))  # fmt: skip


def feed_clicks(conn: sqlite3.Connection, where: str, args: Sequence[Any]) -> None:
    """The clicks of ``main.clicks`` that match ``where`` (newly read): mark their uids, and
    keep the latest name of their campaign, ad set and ad."""
    real = f"({where}) AND source != 'placeholder'"
    touch(conn, f"SELECT space_id, uid FROM main.clicks WHERE {real}", args)
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


def drop_space(conn: sqlite3.Connection, space_id: int) -> None:
    """Everything of a deleted space."""
    for table in CUBE_TABLES:
        if table != "cube_state":
            conn.execute(f"DELETE FROM reports.{table} WHERE space_id = ?", (space_id,))


@dataclass
class _Share:
    """What one uid adds to each cube row of its click."""

    click_ms: int
    keys: list[tuple[str, int]]  # (dim, key_id): its H key first
    firsts: dict[str, int]  # step -> the time of its first event of that step
    deposits: int = 0
    reversed: int = 0
    # currency -> [n, units, fraction, scale, rn, r_units, r_fraction, r_scale]
    money: dict[str, list[int]] | None = None

    def text(self) -> str:
        # in a fixed order (report_steps' index order; sorted keys): equal shares, equal texts
        return json.dumps([self.click_ms, self.keys, self.firsts, self.deposits, self.reversed,
                           self.money or {}], separators=(",", ":"))  # fmt: skip

    @classmethod
    def of(cls, text: str) -> _Share:
        click_ms, keys, firsts, deposits, reversed_, money = json.loads(text)
        return cls(click_ms, [(d, k) for d, k in keys], firsts, deposits, reversed_, money)


class _Deltas:
    """The old shares (sign -1) and new shares (+1) of the uids that changed, as rows of temp
    tables: ``_write`` spreads them over their cube rows and sums them in SQL."""

    def __init__(self) -> None:
        self.heads: list[tuple[int, ...]] = []
        self.keys: list[tuple[int, str, int]] = []
        self.money: list[tuple[Any, ...]] = []
        self.taken = False  # a share was taken off: rows may have emptied

    def add(self, space_id: int, share: _Share, sign: int) -> None:
        i, click_ms = len(self.heads), share.click_ms
        self.taken = self.taken or sign < 0
        ttc = [0] * len(TTC_COLUMNS)
        for s, t in share.firsts.items():
            b = bisect_right(_BOUNDS_MS, t - click_ms)
            ttc[_STEPS.index(s) * PAIRS + b // 2] = sign * (_HIGH if b % 2 else 1)
        self.heads.append((i, space_id, click_ms, sign,
                           *(sign if s in share.firsts else 0 for s in _STEPS),
                           sign * share.deposits, sign * share.reversed, *ttc))  # fmt: skip
        self.keys += [(i, dim, key_id) for dim, key_id in share.keys]
        self.money += [(i, c, *(v if j in (3, 7) else sign * v for j, v in enumerate(m)))
                       for c, m in (share.money or {}).items()]  # fmt: skip


class _Keys:
    """Key ids: the keys of the spaces a round touches, read once; new ones written at once
    at the end (``save``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.known: dict[tuple[Any, ...], int] = {}
        for key_id, *key in conn.execute(
            "SELECT id, space_id, dim, value, link_id, campaign, adset, ad FROM reports.cube_keys"
            " WHERE space_id IN (SELECT DISTINCT space_id FROM reports.cube_touched)"
        ):
            self.known[tuple(key)] = key_id
        top = conn.execute("SELECT max(id) FROM reports.cube_keys").fetchone()[0]
        self.next = (top or 0) + 1
        self.new: list[tuple[Any, ...]] = []

    def id(
        self, space_id: int, dim: str, value: str | None, link_id: int | None,
        campaign: str | None, adset: str | None = None, ad: str | None = None,
    ) -> int:  # fmt: skip
        key = (space_id, dim, value, link_id, campaign, adset, ad)
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = self.next
            self.next += 1
            self.new.append((found, *key))
        return found

    def save(self) -> None:
        self.conn.executemany("INSERT INTO reports.cube_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              self.new)  # fmt: skip


def _new_shares(conn: sqlite3.Connection) -> dict[tuple[int, str], _Share]:
    """The share of every marked uid that has a click, worked out from scratch."""
    keys = _Keys(conn)
    shares: dict[tuple[int, str], _Share] = {}
    for row in conn.execute(
        f"SELECT t.space_id, t.uid, c.created_ms, c.link_id, c.campaign_id, c.adset_id, c.ad_id,"
        f" c.sub_ids, {_D_COLUMNS} FROM reports.cube_touched t CROSS JOIN main.clicks c"
        f" ON c.space_id = t.space_id AND c.uid = t.uid WHERE c.source != 'placeholder'"
    ).fetchall():
        space_id, uid, created_ms, link_id, campaign, adset, ad, sub_ids = row[:8]
        values = dict(zip(D_DIMENSIONS, row[8:], strict=True))
        if sub_ids:
            subs = json.loads(sub_ids)
            values.update({SUB_ID_PREFIX + k: v for k, v in subs.items() if isinstance(v, str)})
        share_keys = [(H, keys.id(space_id, H, None, link_id, campaign, adset, ad))]
        share_keys += [(dim, keys.id(space_id, dim, value, link_id, campaign))
                       for dim, value in sorted(values.items()) if value is not None]  # fmt: skip
        share_keys.append((ALL, keys.id(space_id, ALL, None, None, None)))
        shares[(space_id, uid)] = _Share(int(created_ms), share_keys, {})
    for space_id, uid, event, at_ms, currency, units, fraction, scale, was_reversed in conn.execute(
        "SELECT t.space_id, t.uid, r.event, r.at_ms, r.currency, r.units, r.fraction, r.scale,"
        " r.event = 'deposit' AND EXISTS (SELECT 1 FROM reports.report_reversed v"
        "  WHERE v.space_id = r.space_id AND v.deposit_id = r.inbox_id)"
        " FROM reports.cube_touched t CROSS JOIN reports.report_steps r INDEXED BY report_steps_uid"
        f" ON r.space_id = t.space_id AND r.uid = t.uid WHERE r.event IN {_EVENTS_IN}"
    ):
        share = shares.get((space_id, uid))
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
    keys.save()
    return shares


def apply(conn: sqlite3.Connection, spaces_gone: Iterable[int] = ()) -> int:
    """Move the cube by the change of every marked uid's share, then forget the marks and drop
    the deleted spaces; returns how many uids changed."""
    old = {
        (space_id, uid): (link_id, text)
        for space_id, uid, link_id, text in conn.execute(
            "SELECT u.space_id, u.uid, u.link_id, u.state FROM reports.cube_touched t CROSS"
            " JOIN reports.cube_uids u ON u.space_id = t.space_id AND u.uid = t.uid"
        )
    }
    new = _new_shares(conn)
    deltas = _Deltas()
    gone, kept = [], []
    for who in old.keys() | new.keys():
        before = old.get(who)
        share = new.get(who)
        text = share.text() if share is not None else None
        if before is not None and before[1] == text:
            continue
        if before is not None:
            deltas.add(who[0], _Share.of(before[1]), -1)
        if share is None:
            gone.append(who)
        else:
            deltas.add(who[0], share, +1)
            kept.append((*who, share.keys[0][1], text))
    _write(conn, deltas)
    conn.executemany("DELETE FROM reports.cube_uids WHERE space_id = ? AND uid = ?", gone)
    conn.executemany(
        "INSERT INTO reports.cube_uids VALUES (?, ?, (SELECT link_id FROM reports.cube_keys"
        " WHERE id = ?), ?) ON CONFLICT (space_id, uid) DO UPDATE SET link_id = excluded.link_id,"
        " state = excluded.state",
        kept,
    )
    conn.execute("DELETE FROM reports.cube_touched")
    for space_id in spaces_gone:
        drop_space(conn, space_id)
    return len(gone) + len(kept)


_SUMS = (*COUNTS, *TTC_COLUMNS)
_TEMP = (
    f"""CREATE TEMP TABLE IF NOT EXISTS cube_delta (
        i INTEGER PRIMARY KEY, space_id INTEGER, click_ms INTEGER,
        {", ".join(f"{c} INTEGER" for c in _SUMS)})""",
    """CREATE TEMP TABLE IF NOT EXISTS cube_delta_keys (
        i INTEGER, dim TEXT, key_id INTEGER, PRIMARY KEY (i, dim, key_id)) WITHOUT ROWID""",
    """CREATE TEMP TABLE IF NOT EXISTS cube_delta_money (
        i INTEGER, currency TEXT, n INTEGER, units INTEGER, fraction INTEGER, scale INTEGER,
        rn INTEGER, r_units INTEGER, r_fraction INTEGER, r_scale INTEGER)""",
    """CREATE TEMP TABLE IF NOT EXISTS cube_levels (
        kind INTEGER, level INTEGER, length INTEGER, PRIMARY KEY (kind, level))""",
)
#: Each delta row spread over its cube rows: its keys at each level their kind of row has.
_SPREAD = (
    "temp.cube_delta_keys k JOIN temp.cube_delta d ON d.i = k.i JOIN temp.cube_levels l"
    f" ON l.kind = (k.dim NOT IN ('{H}', '{ALL}'))"
)
_TARGET = "d.space_id, k.dim, l.level, d.click_ms - d.click_ms % l.length, k.key_id"
_GROUP = "GROUP BY 1, 2, 3, 4, 5"
_UPSERT_ROW = (
    f"INSERT INTO reports.cube SELECT {_TARGET}, {', '.join(f'sum(d.{c})' for c in _SUMS)}"
    f" FROM {_SPREAD} WHERE true {_GROUP}"
    f" HAVING {' OR '.join(f'sum(d.{c}) != 0' for c in _SUMS)}"
    " ON CONFLICT (space_id, dim, level, bucket, key_id) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)
)
_UPSERT_MONEY = (
    f"INSERT INTO reports.cube_money SELECT {_TARGET}, m.currency, sum(m.n), sum(m.units),"
    " sum(m.fraction), max(m.scale), sum(m.rn), sum(m.r_units), sum(m.r_fraction),"
    f" max(m.r_scale) FROM temp.cube_delta_money m JOIN {_SPREAD} AND k.i = m.i WHERE true"
    f" {_GROUP}, 6 HAVING sum(m.n) != 0 OR sum(m.units) != 0 OR sum(m.fraction) != 0"
    " OR sum(m.rn) != 0 OR sum(m.r_units) != 0 OR sum(m.r_fraction) != 0"
    " ON CONFLICT (space_id, dim, level, bucket, key_id, currency) DO UPDATE SET"
    " n = n + excluded.n, units = units + excluded.units, fraction = fraction + excluded.fraction,"
    " scale = max(scale, excluded.scale), rn = rn + excluded.rn,"
    " r_units = r_units + excluded.r_units, r_fraction = r_fraction + excluded.r_fraction,"
    " r_scale = max(r_scale, excluded.r_scale)"
)
#: The cube rows a share was taken off (sign -1): those left without a uid go.
_TAKEN = (
    f"(space_id, dim, level, bucket, key_id) IN (SELECT {_TARGET} FROM {_SPREAD}"
    " WHERE d.clicks < 0)"
)


def _write(conn: sqlite3.Connection, deltas: _Deltas) -> None:
    """The differences, spread over their cube rows and summed in SQL (sorted by key: each
    upsert finds its page next to the last one's); a row whose uids all left goes."""
    for statement in _TEMP:
        conn.execute(statement)
    conn.executemany("INSERT OR IGNORE INTO temp.cube_levels VALUES (?, ?, ?)", _LEVELS)
    marks = ", ".join("?" * (3 + len(_SUMS)))
    conn.executemany(f"INSERT INTO temp.cube_delta VALUES ({marks})", deltas.heads)
    conn.executemany("INSERT INTO temp.cube_delta_keys VALUES (?, ?, ?)", deltas.keys)
    conn.executemany("INSERT INTO temp.cube_delta_money VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     deltas.money)  # fmt: skip
    conn.execute(_UPSERT_ROW)
    if deltas.money:
        conn.execute(_UPSERT_MONEY)
    if deltas.taken:
        conn.execute(f"DELETE FROM reports.cube WHERE clicks = 0 AND {_TAKEN}")
        conn.execute(f"DELETE FROM reports.cube_money WHERE n = 0 AND {_TAKEN}")
    for table in ("cube_delta", "cube_delta_keys", "cube_delta_money"):
        conn.execute(f"DELETE FROM temp.{table}")
