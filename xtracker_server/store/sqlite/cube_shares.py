"""A uid's *share* of the report cube (store/sqlite/cube_schema.py), and the sums of the
shares that changed in a catch-up round, as store/sqlite/cube_feed.py ``apply`` moves the
cube's rows by them.

A share is what one uid adds to each cube row of its click (``Share``: its click's time and
keys, its first event of each step, its deposits and money), kept as JSON in ``cube_uids``.
``Deltas`` sums the old shares (taken off) and the new ones per *fine row* (a key's 15
minutes), then derives the cube's rows from those (``cube_schema.LEVELS``); ``Keys`` names
each key with its id (``cube_keys``).
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from xtracker_server.domain.groups import TTC_BOUNDS_S
from xtracker_server.store.sqlite.cube_schema import (
    ALL,
    COUNTS,
    DIMENSION_LEVELS,
    GRID_LEVELS,
    LEVEL_15M,
    LEVEL_DAY,
    LEVEL_HOUR,
    LEVEL_MS,
    LEVELS,
    C,
    H,
    by_value,
)
from xtracker_server.store.sqlite.cube_ttc import TTC_BINS
from xtracker_server.store.sqlite.cube_write import TTC as _TTC
from xtracker_server.store.sqlite.cube_write import Target
from xtracker_wire import CANONICAL_EVENTS

__all__ = ["Deltas", "Fine", "Keys", "Share"]

_BOUNDS_MS = [b * 1000 for b in TTC_BOUNDS_S]
_STEPS = CANONICAL_EVENTS
# The levels of each kind of row (cube_schema.LEVELS), as Deltas.add spreads a share: a
# dimension's rows with link and campaign UTC days only, every other kind all three.
assert LEVELS[H] == LEVELS[ALL] == LEVELS[C] == GRID_LEVELS and DIMENSION_LEVELS == (LEVEL_DAY,)
_DAY, _HOUR, _QUARTER = LEVEL_MS[LEVEL_DAY], LEVEL_MS[LEVEL_HOUR], LEVEL_MS[LEVEL_15M]
_DEPOSITS, _REVERSED = COUNTS.index("deposits"), COUNTS.index("reversed")
_ZEROS = (0,) * _TTC


@dataclass
class Share:
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
    def of(cls, text: str) -> Share:
        click_ms, keys, firsts, deposits, reversed_, money = json.loads(text)
        return cls(click_ms, [(d, k) for d, k in keys], firsts, deposits, reversed_, money)


#: A uid's fine row, summed in Python only: (space_id, dim, quarter, key_id), its H key or one
#: of its dimensions' (value, link, campaign) keys, per 15 minutes.
Fine = tuple[int, str, int, int]


class Deltas:
    """The old shares (sign -1) and new shares (+1) of the uids that changed, summed in Python
    per *fine row*: a uid's H key and each dimension's key, per 15 minutes (a share's few
    non-zero counts: its click, steps, deposits; and time-to-convert cells, one per step).
    ``derive`` then sums those into the cube's rows (cube_schema.LEVELS): the H rows per 15
    minutes, hour and day, the whole space's and the C rows from the H rows, a dimension's
    per day and its value rows per 15 minutes, hour and day. A share is added to its own few
    keys, and once traffic is dense, many shares to each fine row: the stored rows are summed
    from far fewer fine rows than shares."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        # per fine row: its counts (``COUNTS``), then the cells of its histograms (cube_ttc.py)
        self.rows: dict[Fine, list[Any]] = {}
        self.money: dict[Fine, dict[str, list[int]]] = {}
        self.taken: set[Fine] = set()  # fine rows a share was taken off: they may have emptied
        # the new shares of a click alone (most of a round's at full traffic), counted per 15
        # minutes and keys: each such group added once (``derive``)
        self.alone: dict[tuple[int, int, tuple[tuple[str, int], ...]], list[Any]] = {}

    def add(self, space_id: int, share: Share, sign: int) -> None:
        """``share`` added ``sign`` times (-1: taken off) to the rows of its click."""
        if sign == 1 and not share.firsts:  # a click alone: no step, deposit nor money
            alike = (space_id, share.click_ms - share.click_ms % _QUARTER, tuple(share.keys))
            found = self.alone.get(alike)
            if found is None:
                self.alone[alike] = [share, 1]
            else:
                found[1] += 1
            return
        self._add(space_id, share, sign)

    def _add(self, space_id: int, share: Share, sign: int) -> None:
        cells, ttc, money = _vector(share, sign)
        self._spread(_fine(space_id, share), cells, ttc, money, taken=sign < 0)

    def move(self, space_id: int, before: Share, after: Share) -> None:
        """A uid's share changed from ``before`` to ``after``: on the same rows (the same
        click: only its steps, deposits or money changed, as for most changes), the
        difference alone is added to each; else ``before`` off and ``after`` on."""
        if before.click_ms != after.click_ms or before.keys != after.keys:
            self._add(space_id, before, -1)
            self._add(space_id, after, +1)
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
        fine rows: each one's H rows, and its whole space's and C rows per 15 minutes, or its
        dimension's per day and value rows per 15 minutes; then the hour and day rows of the
        whole space, the C rows and the values, from their few 15-minute rows."""
        for (space_id, _, _), (share, n) in self.alone.items():
            self._add(space_id, share, n)
        self.alone.clear()
        rows: dict[Target, list[Any]] = {}
        money: dict[Target, dict[str, list[int]]] = {}
        taken: set[Target] = set()
        _sum(rows, money, taken, self.rows, self.money, self.taken, self._made)
        quarters = {t: acc for t, acc in rows.items() if t[2] == LEVEL_15M and t[1] != H}
        _sum(rows, money, taken, quarters, money, taken, _coarser)
        return rows, money, taken

    def _made(self, fine: Fine) -> list[Target]:
        """The cube's rows a fine row adds to (cube_schema.LEVELS), but the hour and day rows
        of the whole space, the C rows and the values (``_coarser``)."""
        space_id, dim, quarter, key_id = fine
        if dim == H:
            whole = self.keys.id(space_id, ALL, None, None, None)
            return [(space_id, H, LEVEL_15M, quarter, key_id),
                    (space_id, H, LEVEL_HOUR, quarter - quarter % _HOUR, key_id),
                    (space_id, H, LEVEL_DAY, quarter - quarter % _DAY, key_id),
                    (space_id, ALL, LEVEL_15M, quarter, whole),
                    (space_id, C, LEVEL_15M, quarter, self.keys.campaign_key(key_id))]  # fmt: skip
        value_dim, value_id = self.keys.value_key(key_id)
        return [(space_id, dim, LEVEL_DAY, quarter - quarter % _DAY, key_id),
                (space_id, value_dim, LEVEL_15M, quarter, value_id)]  # fmt: skip


def _coarser(target: Any) -> list[Target]:
    """The hour and day rows of a 15-minute row of the whole space, a C key or a value."""
    space_id, dim, _, quarter, key_id = target
    return [(space_id, dim, LEVEL_HOUR, quarter - quarter % _HOUR, key_id),
            (space_id, dim, LEVEL_DAY, quarter - quarter % _DAY, key_id)]  # fmt: skip


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
    share: Share, sign: int
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


def _fine(space_id: int, share: Share) -> list[Fine]:
    """The fine rows of a share's click: each of its keys' 15 minutes."""
    quarter = share.click_ms - share.click_ms % _QUARTER
    return [(space_id, dim, quarter, key_id) for dim, key_id in share.keys]


class Keys:
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
        self.campaigns: dict[int, int] = {}  # an H key -> its C key
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

    def campaign_key(self, key_id: int) -> int:
        """The C key (link, campaign) of an H key (link, campaign, ad set, ad)."""
        found = self.campaigns.get(key_id)
        if found is None:
            if self.of is None:
                self.of = {i: k for k, i in self.known.items()}
            space_id, _, _, link_id, campaign = self.of[key_id][:5]
            found = self.campaigns[key_id] = self.id(space_id, C, None, link_id, campaign)
        return found

    def save(self) -> None:
        self.conn.executemany("INSERT INTO reports.cube_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              self.new)  # fmt: skip
