"""The time-to-convert histograms of a cube row (store/sqlite/cube_schema.py ``ttc``): sparse,
as the cells that are not zero.

A cell is one bin of one step's histogram: ``index = step * TTC_BINS + bin`` (steps in
``CANONICAL_EVENTS`` order, bins over ``domain.groups.TTC_BOUNDS_S``). A row's histograms are
its cells sorted by index, as 64-bit pairs (index, count) in one BLOB (``array('q')``, the
machine's byte order: the file is this machine's), NULL when every cell is zero. A cube row
holds a few uids at 15 minutes and tens to hundreds per day, so its cells are few.

A report reads a group's rows' cells in one value, ``CONCAT``: SQLite's own aggregate (in C)
puts their BLOBs one after another; ``add_concat`` adds them to the group's flat counts
(``CELLS`` of them) in one pass, and ``histograms`` cuts those into the steps' histograms. (A
Python aggregate, called once per row, cost more than the counts' whole query.) A report's
groups hold their values as they are (``Histograms``) and add them up when first read: of the
thousands of groups of a report by ad, the hundred it shows are.

The feed adds a row's difference with ``cube_ttc_add`` in its upsert; ``register`` puts it on a
connection (the catch-up's and every reader's).
"""

from __future__ import annotations

import sqlite3
from array import array
from itertools import chain

from xtracker_server.domain.groups import TTC_BOUNDS_S
from xtracker_server.store.sqlite.lazy import LazyMapping
from xtracker_wire import CANONICAL_EVENTS

__all__ = [
    "CELLS",
    "CONCAT",
    "TTC_BINS",
    "Histograms",
    "add",
    "add_concat",
    "encode",
    "histograms",
    "register",
    "summed",
]

TTC_BINS = len(TTC_BOUNDS_S) + 1
#: The cells of a row: one histogram per step.
CELLS = TTC_BINS * len(CANONICAL_EVENTS)
#: The SQL aggregate of a group's rows' ``ttc`` (``{}``: the column), for ``add_concat``: their
#: BLOBs one after another (NULL rows left out; no row with cells: NULL). group_concat reads a
#: BLOB as text in the file's encoding, UTF-8 (SQLite's default; xtracker sets no other), so
#: its bytes pass as they are, NUL bytes too (tests/server/test_cube_ttc.py).
CONCAT = "CAST(group_concat({}, '') AS BLOB)"


def encode(cells: dict[int, int]) -> bytes | None:
    """The BLOB of ``cells`` (index -> count), the zero ones left out."""
    if not cells:  # a row that gained or lost clicks alone
        return None
    if len(cells) == 1:  # most rows of a round: one uid's first step
        ((index, n),) = cells.items()
        return array("q", (index, n)).tobytes() if n else None
    kept = sorted([cell for cell in cells.items() if cell[1]])
    return array("q", chain.from_iterable(kept)).tobytes() if kept else None


def add(a: bytes | None, b: bytes | None) -> bytes | None:
    """``a`` plus ``b`` (either NULL: none), as a BLOB (``cube_ttc_add``: called per upsert of
    a row that exists, so its loops are C's: a's cells a dict at once, b's few added)."""
    if not b:
        return a
    if not a:
        return b
    flat_a, flat_b = array("q", a), array("q", b)
    acc = dict(zip(flat_a[::2], flat_a[1::2], strict=True))  # a's cells: none is zero
    get = acc.get
    for index, n in zip(flat_b[::2], flat_b[1::2], strict=True):
        n += get(index, 0)
        if n:
            acc[index] = n
        else:
            acc.pop(index, None)
    return array("q", chain.from_iterable(sorted(acc.items()))).tobytes() if acc else None


def summed(cells: bytes | None) -> bytes | None:
    """The BLOB of the cells of ``CONCAT``'s value (BLOBs one after another) added up per
    index: the histograms of the rows it concatenated, as one row's (cube_coarse.py)."""
    if not cells:
        return None
    flat = array("q", cells)
    acc: dict[int, int] = {}
    for index, n in zip(flat[::2], flat[1::2], strict=True):
        acc[index] = acc.get(index, 0) + n
    return encode(acc)


def add_concat(
    acc: tuple[int, ...] | None, cells: bytes | None, sign: int
) -> tuple[int, ...] | None:
    """``acc`` (``CELLS`` counts by index; None: all zero) plus ``sign`` times the cells of
    ``cells`` (``CONCAT``'s value: BLOBs one after another; None: none). Added
    up in a list, kept as a tuple: a tuple of numbers the garbage collector soon stops
    walking, and a step's histogram is a slice of it."""
    if not cells:
        return acc
    flat = array("q", cells)
    sums = [0] * CELLS if acc is None else list(acc)
    if sign == 1:
        for index, n in zip(flat[::2], flat[1::2], strict=True):
            sums[index] += n
    else:
        for index, n in zip(flat[::2], flat[1::2], strict=True):
            sums[index] += sign * n
    return tuple(sums)


_ZERO = (0,) * TTC_BINS
_NONE = dict.fromkeys(CANONICAL_EVENTS, _ZERO)
_STEPS = [(event, n * TTC_BINS, (n + 1) * TTC_BINS) for n, event in enumerate(CANONICAL_EVENTS)]


def histograms(acc: tuple[int, ...] | None) -> dict[str, tuple[int, ...]]:
    """Each step's histogram from ``acc`` (``add_concat``): every canonical event, zeros
    too."""
    if acc is None:
        return dict(_NONE)
    out = {}
    for event, lo, hi in _STEPS:
        hist = acc[lo:hi]
        out[event] = _ZERO if hist == _ZERO else hist
    return out


class Histograms(LazyMapping[str, tuple[int, ...]]):
    """A group's histograms (``GroupCounts.ttc``: each canonical event's) from ``CONCAT``
    values and their signs, added up (``add_concat``, ``histograms``) when first read."""

    __slots__ = ("_parts", "_steps")

    def __init__(self, parts: list[tuple[bytes, int]]) -> None:
        self._parts = parts
        self._steps: dict[str, tuple[int, ...]] | None = None

    def _read(self) -> dict[str, tuple[int, ...]]:
        if self._steps is None:  # two threads reading at once both find the same steps
            acc = None
            for cells, sign in self._parts:
                acc = add_concat(acc, cells, sign)
            # the parts kept: a thread that found no steps yet adds them up too, not from []
            self._steps = histograms(acc)
        return self._steps


def register(conn: sqlite3.Connection) -> None:
    """``cube_ttc_add`` on ``conn``."""
    conn.create_function("cube_ttc_add", 2, add, deterministic=True)
