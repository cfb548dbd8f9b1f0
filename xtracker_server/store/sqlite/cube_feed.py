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
from xtracker_server.store.sqlite import cube_ttc
from xtracker_server.store.sqlite.cube_schema import (
    ALL,
    COUNTS,
    CUBE_TABLES,
    DIMENSION_LEVELS,
    LEVEL_15M,
    LEVEL_DAY,
    LEVEL_MS,
    LEVELS,
    NAMED,
    H,
)
from xtracker_server.store.sqlite.cube_ttc import TTC_BINS
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
_D_NAMES = tuple(sorted(D_DIMENSIONS))
_D_COLUMNS = ", ".join(f"c.{D_DIMENSIONS[d]}" for d in _D_NAMES)

# The levels of each kind of row (cube_schema.LEVELS), as _Deltas.add spreads a share.
assert LEVELS[H] == LEVELS[ALL] == (LEVEL_15M, LEVEL_DAY) and DIMENSION_LEVELS == (LEVEL_DAY,)
_DAY, _QUARTER = LEVEL_MS[LEVEL_DAY], LEVEL_MS[LEVEL_15M]


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


#: A cube row's place: (space_id, dim, level, bucket, key_id).
Target = tuple[int, str, int, int, int]


class _Deltas:
    """The old shares (sign -1) and new shares (+1) of the uids that changed, summed per cube
    row in Python: a share's few non-zero counts (its click, steps, deposits) and time-to-convert
    cells (one per step) added to each row of its click (its keys at their levels)."""

    def __init__(self) -> None:
        # per row: its counts (``COUNTS``), then the cells of its histograms (cube_ttc.py)
        self.rows: dict[Target, list[Any]] = {}
        self.money: dict[tuple[Target, str], list[int]] = {}
        self.taken: set[Target] = set()  # rows a share was taken off: they may have emptied

    def add(self, space_id: int, share: _Share, sign: int) -> None:
        click_ms = share.click_ms
        cells = [(0, sign)]
        cells += [(1 + _STEPS.index(s), sign) for s in share.firsts]
        if share.deposits:
            cells.append((_DEPOSITS, sign * share.deposits))
        if share.reversed:
            cells.append((_REVERSED, sign * share.reversed))
        ttc = [(_STEPS.index(s) * TTC_BINS + bisect_right(_BOUNDS_MS, t - click_ms), sign)
               for s, t in share.firsts.items()]  # fmt: skip
        money = [(c, [v if j in (3, 7) else sign * v for j, v in enumerate(m)])
                 for c, m in (share.money or {}).items()]  # fmt: skip
        rows = self.rows
        day = click_ms - click_ms % _DAY
        quarter = click_ms - click_ms % _QUARTER
        targets = [(space_id, dim, LEVEL_DAY, day, key_id) for dim, key_id in share.keys]
        targets += [(space_id, dim, LEVEL_15M, quarter, key_id) for dim, key_id in share.keys
                    if dim in (H, ALL)]  # fmt: skip
        if sign < 0:
            self.taken.update(targets)
        for target in targets:
            acc = rows.get(target)
            if acc is None:
                acc = rows[target] = [*_ZEROS, {}]
            for col, v in cells:
                acc[col] += v
            hist = acc[_TTC]
            for index, v in ttc:
                hist[index] = hist.get(index, 0) + v
            for currency, m in money:
                found = self.money.get((target, currency))
                if found is None:
                    self.money[(target, currency)] = list(m)
                    continue
                for j, v in enumerate(m):
                    found[j] = max(found[j], v) if j in (3, 7) else found[j] + v


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
    key, known = keys.id, keys.known
    shares: dict[tuple[int, str], _Share] = {}
    for row in conn.execute(
        f"SELECT t.space_id, t.uid, c.created_ms, c.link_id, c.campaign_id, c.adset_id, c.ad_id,"
        f" c.sub_ids, {_D_COLUMNS} FROM reports.cube_touched t CROSS JOIN main.clicks c"
        f" ON c.space_id = t.space_id AND c.uid = t.uid WHERE c.source != 'placeholder'"
    ).fetchall():
        space_id, uid, created_ms, link_id, campaign, adset, ad, sub_ids = row[:8]
        share_keys = [(H, key(space_id, H, None, link_id, campaign, adset, ad))]
        # in a fixed order (the dimensions', then the sub-ids' sorted): equal shares, equal texts
        share_keys += [(dim, known.get((space_id, dim, value, link_id, campaign, None, None))
                         or key(space_id, dim, value, link_id, campaign))
                       for dim, value in zip(_D_NAMES, row[8:], strict=True)
                       if value is not None]  # fmt: skip
        if sub_ids:
            subs = json.loads(sub_ids)
            share_keys += [(SUB_ID_PREFIX + k, key(space_id, SUB_ID_PREFIX + k, v, link_id,
                                                   campaign))
                           for k, v in sorted(subs.items()) if isinstance(v, str)]  # fmt: skip
        share_keys.append((ALL, key(space_id, ALL, None, None, None)))
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


_DEPOSITS, _REVERSED = COUNTS.index("deposits"), COUNTS.index("reversed")
_TTC = len(COUNTS)  # a row's cells, after its counts (_Deltas.rows)
_ZEROS = (0,) * _TTC
_KEY = "space_id, dim, level, bucket, key_id"
_UPSERT_ROW = (
    f"INSERT INTO reports.cube VALUES ({', '.join('?' * (6 + len(COUNTS)))})"
    f" ON CONFLICT ({_KEY}) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTS)
    + ", ttc = cube_ttc_add(ttc, excluded.ttc)"
)
_UPSERT_MONEY = (
    f"INSERT INTO reports.cube_money VALUES ({', '.join('?' * 14)})"
    f" ON CONFLICT ({_KEY}, currency) DO UPDATE SET"
    " n = n + excluded.n, units = units + excluded.units, fraction = fraction + excluded.fraction,"
    " scale = max(scale, excluded.scale), rn = rn + excluded.rn,"
    " r_units = r_units + excluded.r_units, r_fraction = r_fraction + excluded.r_fraction,"
    " r_scale = max(r_scale, excluded.r_scale)"
)
_KEY_IS = " AND ".join(f"{c} = ?" for c in _KEY.split(", "))


def _write(conn: sqlite3.Connection, deltas: _Deltas) -> None:
    """The summed differences, one upsert per cube row (in key order: each finds its page next
    to the last one's); a row whose uids all left goes."""
    cube_ttc.register(conn)
    rows, encode = deltas.rows, cube_ttc.encode
    conn.executemany(_UPSERT_ROW, [(*target, *rows[target][:_TTC], encode(rows[target][_TTC]))
                                   for target in sorted(rows)])  # fmt: skip
    conn.executemany(_UPSERT_MONEY, [(*target, currency, *m) for (target, currency), m
                                     in sorted(deltas.money.items()) if any(m)])  # fmt: skip
    taken = sorted(deltas.taken)
    conn.executemany(f"DELETE FROM reports.cube WHERE {_KEY_IS} AND clicks = 0", taken)
    conn.executemany(f"DELETE FROM reports.cube_money WHERE {_KEY_IS} AND n = 0", taken)
