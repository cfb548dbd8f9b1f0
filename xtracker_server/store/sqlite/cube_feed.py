"""Keeping the report cube (store/sqlite/cube_schema.py) up to date, inside each round of the
rollup's catch-up (store/sqlite/rollup.py), off the write path.

A round marks the uids it changed, by their click's id (``touch``, ``touch_uids``): the uids
of the events it fed, of backlog entries (a bind moved an event off a uid, a click came after
its events), of removals (an erased uid, by the id of the click it had, or event; a deleted
link: every uid of its clicks), and of the clicks it read (``main.clicks`` past its own
watermark: a click counts without events). A uid without a click is in no cube row. ``apply``
then works out each marked uid's share again from scratch (its click, its rolled-up events in
``report_steps``, which of its deposits ``report_reversed`` pairs with a reversal), and moves
the cube rows by the difference to the share it had (``cube_uids``): old off, new on, summed in
Python and written with one upsert per row. Whatever changed a uid, the cube stays exact.
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from xtracker_server.domain.filters import DIMENSIONS, SUB_ID_PREFIX
from xtracker_server.domain.groups import TTC_BOUNDS_S
from xtracker_server.store.sqlite import cube_write
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
    UIDS_TABLE,
    H,
    by_value,
)
from xtracker_server.store.sqlite.cube_ttc import TTC_BINS
from xtracker_server.store.sqlite.cube_write import TTC as _TTC
from xtracker_server.store.sqlite.cube_write import Target
from xtracker_wire import CANONICAL_EVENTS

__all__ = ["D_DIMENSIONS", "H_DIMENSIONS", "apply", "drop_space", "feed_clicks", "take_off",
           "touch", "touch_uids"]  # fmt: skip

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

# The levels of each kind of row (cube_schema.LEVELS), as _Deltas.add spreads a share: a
# dimension's rows with link and campaign UTC days only, every other kind both.
assert LEVELS[H] == LEVELS[ALL] == (LEVEL_15M, LEVEL_DAY) and DIMENSION_LEVELS == (LEVEL_DAY,)
_DAY, _QUARTER = LEVEL_MS[LEVEL_DAY], LEVEL_MS[LEVEL_15M]


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

    def text(self, keys_text: dict[tuple[tuple[str, int], ...], str]) -> str:
        """Its JSON, in a fixed order (report_steps' index order; sorted keys): equal shares,
        equal texts. ``keys_text``: the JSON of the keys lists met so far (a round's clicks
        share a few), filled in."""
        keys = tuple(self.keys)
        listed = keys_text.get(keys)
        if listed is None:
            listed = keys_text[keys] = json.dumps(self.keys, separators=(",", ":"))
        if not self.firsts:  # a click alone: most shares
            return f"[{self.click_ms},{listed},{{}},{self.deposits},{self.reversed},{{}}]"
        rest = json.dumps([self.firsts, self.deposits, self.reversed, self.money or {}],
                          separators=(",", ":"))  # fmt: skip
        return f"[{self.click_ms},{listed},{rest[1:]}"

    @classmethod
    def of(cls, text: str) -> _Share:
        click_ms, keys, firsts, deposits, reversed_, money = json.loads(text)
        return cls(click_ms, [(d, k) for d, k in keys], firsts, deposits, reversed_, money)


#: A uid's fine row, summed in Python only: (space_id, dim, quarter, key_id), its H key or one
#: of its dimensions' (value, link, campaign) keys, per 15 minutes.
Fine = tuple[int, str, int, int]


class _Deltas:
    """The old shares (sign -1) and new shares (+1) of the uids that changed, summed in Python
    per *fine row*: a uid's H key and each dimension's key, per 15 minutes (a share's few
    non-zero counts: its click, steps, deposits; and time-to-convert cells, one per step).
    ``derive`` then sums those into the cube's rows (cube_schema.LEVELS): the H rows per 15
    minutes and per day, the whole space's from the H rows, a dimension's per day and its
    value rows per 15 minutes and per day. A share is added to its own few keys, and once
    traffic is dense, many shares to each fine row: the stored rows are summed from far fewer
    fine rows than shares."""

    def __init__(self, keys: _Keys) -> None:
        self.keys = keys
        # per fine row: its counts (``COUNTS``), then the cells of its histograms (cube_ttc.py)
        self.rows: dict[Fine, list[Any]] = {}
        self.money: dict[Fine, dict[str, list[int]]] = {}
        self.taken: set[Fine] = set()  # fine rows a share was taken off: they may have emptied

    def add(self, space_id: int, share: _Share, sign: int) -> None:
        """``share`` added ``sign`` times (-1: taken off) to the rows of its click."""
        cells, ttc, money = _vector(share, sign)
        self._spread(_fine(space_id, share), cells, ttc, money, taken=sign < 0)

    def move(self, space_id: int, before: _Share, after: _Share) -> None:
        """A uid's share changed from ``before`` to ``after``: on the same rows (the same
        click: only its steps, deposits or money changed, as for most changes), the
        difference alone is added to each; else ``before`` off and ``after`` on."""
        if before.click_ms != after.click_ms or before.keys != after.keys:
            self.add(space_id, before, -1)
            self.add(space_id, after, +1)
            return
        old, new = _vector(before, -1), _vector(after, +1)
        cells, ttc = _net(old[0], new[0]), _net(old[1], new[1])
        money: dict[str, list[int]] = {}
        _add_money(money, old[2])
        _add_money(money, new[2])
        moved = [(c, m) for c, m in money.items() if any(m)]
        if cells or ttc or moved:
            taken = any(v < 0 for _, v in cells) or any(m[0] < 0 for _, m in moved)
            self._spread(_fine(space_id, after), cells, ttc, moved, taken=taken)

    def _spread(
        self, targets: list[Fine], cells: list[tuple[int, int]], ttc: list[tuple[int, int]],
        money: list[tuple[str, list[int]]], *, taken: bool,
    ) -> None:  # fmt: skip
        if taken:
            self.taken.update(targets)
        _add_to(self.rows, self.money, targets, cells, ttc, money)

    def derive(self) -> tuple[dict[Target, list[Any]], dict[Target, dict[str, list[int]]],
                              set[Target]]:  # fmt: skip
        """The cube's rows (and money, and the rows that may have emptied) summed from the
        fine rows: each one's H rows and whole space's per 15 minutes, or its dimension's per
        day and value rows per 15 minutes; then the day rows of those of the whole space and
        of the values, from their few 15-minute rows."""
        rows: dict[Target, list[Any]] = {}
        money: dict[Target, dict[str, list[int]]] = {}
        taken: set[Target] = set()
        _sum(rows, money, taken, self.rows, self.money, self.taken, self._made)
        quarters = {t: acc for t, acc in rows.items() if t[2] == LEVEL_15M and t[1] != H}
        _sum(rows, money, taken, quarters, money, taken, _day_of)
        return rows, money, taken

    def _made(self, fine: Fine) -> list[Target]:
        """The cube's rows a fine row adds to (cube_schema.LEVELS), but the day rows of the
        whole space and of the values (``_day_of``)."""
        space_id, dim, quarter, key_id = fine
        day = quarter - quarter % _DAY
        if dim == H:
            whole = self.keys.id(space_id, ALL, None, None, None)
            return [(space_id, H, LEVEL_15M, quarter, key_id),
                    (space_id, H, LEVEL_DAY, day, key_id),
                    (space_id, ALL, LEVEL_15M, quarter, whole)]  # fmt: skip
        value_dim, value_id = self.keys.value_key(key_id)
        return [(space_id, dim, LEVEL_DAY, day, key_id),
                (space_id, value_dim, LEVEL_15M, quarter, value_id)]  # fmt: skip


def _day_of(target: Any) -> list[Target]:
    space_id, dim, _, quarter, key_id = target
    return [(space_id, dim, LEVEL_DAY, quarter - quarter % _DAY, key_id)]


def _sum(
    rows: dict[Target, list[Any]], money: dict[Target, dict[str, list[int]]], taken: set[Target],
    parts: dict[Any, list[Any]], parts_money: dict[Any, dict[str, list[int]]],
    parts_taken: set[Any], made: Callable[[Any], list[Target]],
) -> None:  # fmt: skip
    """Add each of ``parts`` (rows: counts, then cells), its money and whether it was taken
    from, to the rows ``made`` says it adds to."""
    for part, acc in parts.items():
        counts = [(col, v) for col, v in enumerate(acc[:_TTC]) if v]  # a few, mostly
        cells = [(index, v) for index, v in acc[_TTC].items() if v]
        m = parts_money.get(part)
        if not counts and not cells and not m:
            continue  # what left and came back in the round: nothing to write
        targets = made(part)
        _add_to(rows, money, targets, counts, cells, list(m.items()) if m else [])
        if part in parts_taken:
            taken.update(targets)


def _add_to(
    rows: dict[Any, list[Any]], money_of: dict[Any, dict[str, list[int]]], targets: list[Any],
    counts: list[tuple[int, int]], cells: list[tuple[int, int]],
    money: list[tuple[str, list[int]]],
) -> None:  # fmt: skip
    """Add non-zero counts (column, n), time-to-convert cells (index, n) and money per
    currency to each of the rows ``targets``."""
    first = list(_ZEROS)  # a row not met yet: the counts as they are
    for col, v in counts:
        first[col] += v
    for target in targets:
        acc = rows.get(target)
        if acc is None:
            rows[target] = [*first, dict(cells)]
        else:
            for col, v in counts:
                acc[col] += v
            hist = acc[_TTC]
            for index, v in cells:
                hist[index] = hist.get(index, 0) + v
        if money:
            _add_money(money_of.setdefault(target, {}), money)


def _net(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Two lists of (index, n) added up, the indexes whose sum is zero left out."""
    summed = dict(a)
    for index, n in b:
        summed[index] = summed.get(index, 0) + n
    return [(index, n) for index, n in summed.items() if n]


def _add_money(into: dict[str, list[int]], money: Iterable[tuple[str, list[int]]]) -> None:
    """Money per currency added (the scales: the most given)."""
    for currency, m in money:
        found = into.get(currency)
        if found is None:
            into[currency] = list(m)
            continue
        for j, v in enumerate(m):
            found[j] = max(found[j], v) if j in (3, 7) else found[j] + v


def _vector(
    share: _Share, sign: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[str, list[int]]]]:
    """What ``share`` adds to each row of its click, times ``sign``: its non-zero counts
    (column, count), time-to-convert cells (index, count) and money per currency (the scales
    as they are: a row's is the most given)."""
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
    return cells, ttc, money


def _fine(space_id: int, share: _Share) -> list[Fine]:
    """The fine rows of a share's click: each of its keys' 15 minutes."""
    quarter = share.click_ms - share.click_ms % _QUARTER
    return [(space_id, dim, quarter, key_id) for dim, key_id in share.keys]


class _Keys:
    """Key ids: the keys of the spaces a round touches, read once; new ones written at once
    at the end (``save``)."""

    def __init__(self, conn: sqlite3.Connection, spaces: Sequence[int] | None = None) -> None:
        """The keys of ``spaces`` (None: of the marked uids')."""
        self.conn = conn
        self.known: dict[tuple[Any, ...], int] = {}
        of_spaces = ("SELECT DISTINCT space_id FROM reports.cube_touched" if spaces is None
                     else "SELECT value FROM json_each(?)")  # fmt: skip
        for key_id, *key in conn.execute(
            "SELECT id, space_id, dim, value, link_id, campaign, adset, ad FROM reports.cube_keys"
            f" WHERE space_id IN ({of_spaces})",
            () if spaces is None else (json.dumps(list(spaces)),),
        ):
            self.known[tuple(key)] = key_id
        top = conn.execute("SELECT max(id) FROM reports.cube_keys").fetchone()[0]
        self.next = (top or 0) + 1
        self.new: list[tuple[Any, ...]] = []
        self.values: dict[int, tuple[str, int]] = {}  # a dimension's key -> its value rows' key
        self.of: dict[int, tuple[Any, ...]] | None = None  # key id -> key, when first needed

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
            if self.of is not None:
                self.of[found] = key
        return found

    def value_key(self, key_id: int) -> tuple[str, int]:
        """The value rows' ``dim`` and key of a dimension's key (value, link, campaign)."""
        found = self.values.get(key_id)
        if found is None:
            if self.of is None:
                self.of = {i: k for k, i in self.known.items()}
            space_id, dim, value = self.of[key_id][:3]
            value_dim = by_value(dim)
            found = self.values[key_id] = (
                value_dim,
                self.id(space_id, value_dim, value, None, None),
            )
        return found

    def save(self) -> None:
        self.conn.executemany("INSERT INTO reports.cube_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              self.new)  # fmt: skip


#: A uid of the cube: (space_id, its click's id).
Who = tuple[int, int]


def _new_shares(conn: sqlite3.Connection, keys: _Keys) -> dict[Who, _Share]:
    """The share of every marked uid that has a click, worked out from scratch: its keys are
    its H key and its dimensions' (value, link, campaign) keys."""
    key, known = keys.id, keys.known
    shares: dict[Who, _Share] = {}
    for row in conn.execute(
        f"SELECT t.space_id, t.click_id, c.created_ms, c.link_id, c.campaign_id, c.adset_id,"
        f" c.ad_id, c.sub_ids, {_D_COLUMNS} FROM reports.cube_touched t CROSS JOIN main.clicks c"
        " ON c.id = t.click_id WHERE c.space_id = t.space_id AND c.source != 'placeholder'"
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
        shares[(space_id, click_id)] = _Share(int(created_ms), share_keys, {})
    steps = conn.execute(
        "SELECT t.space_id, t.click_id, r.event, r.at_ms, r.currency, r.units, r.fraction,"
        " r.scale, r.event = 'deposit' AND EXISTS (SELECT 1 FROM reports.report_reversed v"
        "  WHERE v.space_id = r.space_id AND v.deposit_id = r.inbox_id)"
        " FROM reports.cube_touched t CROSS JOIN main.clicks c ON c.id = t.click_id"
        " CROSS JOIN reports.report_steps r INDEXED BY report_steps_uid"
        " ON r.space_id = c.space_id AND r.uid = c.uid"
        f" WHERE c.space_id = t.space_id AND r.event IN {_EVENTS_IN}"
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
    keys = _Keys(conn, sorted({space_id for space_id, _ in shares}))
    deltas = _Deltas(keys)
    for space_id, text in shares:
        deltas.add(space_id, _Share.of(text), -1)
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


def apply(conn: sqlite3.Connection, spaces_gone: Iterable[int] = ()) -> int:
    """Move the cube by the change of every marked uid's share, then forget the marks and drop
    the deleted spaces; returns how many uids changed."""
    old = {
        (space_id, click_id): (link_id, text)
        for space_id, click_id, link_id, text in conn.execute(
            "SELECT u.space_id, u.click_id, u.link_id, u.state FROM reports.cube_touched t"
            " CROSS JOIN reports.cube_uids u ON u.click_id = t.click_id"
        )
    }
    keys = _Keys(conn)
    new = _new_shares(conn, keys)
    deltas = _Deltas(keys)
    gone: list[Who] = []
    kept: list[tuple[Any, ...]] = []  # (click_id, space_id, its H key, its text)
    keys_text: dict[tuple[tuple[str, int], ...], str] = {}
    # the new shares of a click alone (most of a round's), per 15 minutes and keys: added once
    clicks_alone: dict[tuple[int, int, tuple[tuple[str, int], ...]], list[Any]] = {}
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
        if before is None and share is not None and not share.firsts:
            alike = (who[0], share.click_ms - share.click_ms % _QUARTER, tuple(share.keys))
            found = clicks_alone.get(alike)
            if found is None:
                clicks_alone[alike] = [share, 1]
            else:
                found[1] += 1
        elif before is None:
            deltas.add(who[0], share, +1)  # type: ignore[arg-type]  # one of them is there
        elif share is None:
            deltas.add(who[0], _Share.of(before[1]), -1)
        else:
            deltas.move(who[0], _Share.of(before[1]), share)
    for (space_id, _, _), (share, n) in clicks_alone.items():
        deltas.add(space_id, share, n)
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
    conn.execute("DELETE FROM reports.cube_touched")
    conn.execute("DELETE FROM temp.cube_fresh")
    for space_id in spaces_gone:
        drop_space(conn, space_id)
    return len(gone) + len(kept)


_DEPOSITS, _REVERSED = COUNTS.index("deposits"), COUNTS.index("reversed")
_ZEROS = (0,) * _TTC
