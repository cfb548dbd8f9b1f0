"""The time-to-convert histograms of a cube row (store/sqlite/cube_schema.py ``ttc``): sparse,
as the cells that are not zero.

A cell is one bin of one step's histogram: ``index = step * TTC_BINS + bin`` (steps in
``CANONICAL_EVENTS`` order, bins over ``domain.groups.TTC_BOUNDS_S``). A row's histograms are
its cells sorted by index, as 64-bit pairs (index, count) in one BLOB (``array('q')``, the
machine's byte order: the file is this machine's), NULL when every cell is zero. A cube row
holds a few uids at 15 minutes and tens to hundreds per day, so its cells are few, and a report
sums them per group in a SQL aggregate (``cube_ttc_sum``) rather than summing a column per bin
of every row.

The feed adds a row's difference with ``cube_ttc_add`` in its upsert; ``register`` puts both
functions on a connection (the catch-up's and every reader's).
"""

from __future__ import annotations

import sqlite3
from array import array

from xtracker_server.domain.groups import TTC_BOUNDS_S
from xtracker_wire import CANONICAL_EVENTS

__all__ = ["TTC_BINS", "Sum", "accumulate", "add", "encode", "histograms", "register"]

TTC_BINS = len(TTC_BOUNDS_S) + 1


def encode(cells: dict[int, int]) -> bytes | None:
    """The BLOB of ``cells`` (index -> count), the zero ones left out."""
    if len(cells) == 1:  # most rows of a round: one uid's first step
        ((index, n),) = cells.items()
        return array("q", (index, n)).tobytes() if n else None
    flat = array("q")
    for index in sorted(cells):
        if cells[index]:
            flat.extend((index, cells[index]))
    return flat.tobytes() if flat else None


def add(a: bytes | None, b: bytes | None) -> bytes | None:
    """``a`` plus ``b`` (either NULL: none), as a BLOB (``cube_ttc_add``)."""
    if not b:
        return a
    if not a:
        return b
    acc: dict[int, int] = {}
    accumulate(acc, a, 1)
    accumulate(acc, b, 1)
    return encode(acc)


class Sum:
    """``cube_ttc_sum(ttc)``: the sum of the rows' histograms (a SQL aggregate). A group holds
    few cells (a dict of them), so only they are summed and written."""

    def __init__(self) -> None:
        self.cells: dict[int, int] = {}

    def step(self, blob: bytes | None) -> None:
        accumulate(self.cells, blob, 1)

    def finalize(self) -> bytes | None:
        return encode(self.cells)


def accumulate(acc: dict[int, int], blob: bytes | None, sign: int) -> None:
    """Add ``sign`` times the cells of ``blob`` to ``acc`` (index -> count)."""
    if blob:
        flat = array("q", blob)
        for i in range(0, len(flat), 2):
            acc[flat[i]] = acc.get(flat[i], 0) + sign * flat[i + 1]


_ZERO = (0,) * TTC_BINS


def histograms(acc: dict[int, int]) -> dict[str, tuple[int, ...]]:
    """Each step's histogram from its cells (every canonical event, zeros too)."""
    steps: dict[int, list[int]] = {}
    for index, n in acc.items():
        if n:
            step, b = divmod(index, TTC_BINS)
            hist = steps.get(step)
            if hist is None:
                hist = steps[step] = [0] * TTC_BINS
            hist[b] = n
    return {event: tuple(steps[n]) if n in steps else _ZERO
            for n, event in enumerate(CANONICAL_EVENTS)}  # fmt: skip


def register(conn: sqlite3.Connection) -> None:
    """``cube_ttc_add`` and ``cube_ttc_sum`` on ``conn``."""
    conn.create_function("cube_ttc_add", 2, add, deterministic=True)
    # typeshed's aggregate protocol takes and gives int only; SQLite passes and takes BLOBs
    conn.create_aggregate("cube_ttc_sum", 1, Sum)  # type: ignore[arg-type]
