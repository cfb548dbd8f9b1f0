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

__all__ = ["TTC_BINS", "Sum", "accumulate", "add", "cells", "encode", "histograms", "register"]

TTC_BINS = len(TTC_BOUNDS_S) + 1
_CELLS = len(CANONICAL_EVENTS) * TTC_BINS


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


def _into(acc: list[int], blob: bytes, sign: int = 1) -> None:
    flat = array("q", blob)
    for i in range(0, len(flat), 2):
        acc[flat[i]] += sign * flat[i + 1]


def _dense(acc: list[int]) -> bytes | None:
    return encode({i: n for i, n in enumerate(acc) if n})


def add(a: bytes | None, b: bytes | None) -> bytes | None:
    """``a`` plus ``b`` (either NULL: none), as a BLOB (``cube_ttc_add``)."""
    if not b:
        return a
    if not a:
        return b
    acc = [0] * _CELLS
    _into(acc, a)
    _into(acc, b)
    return _dense(acc)


class Sum:
    """``cube_ttc_sum(ttc)``: the sum of the rows' histograms (a SQL aggregate)."""

    def __init__(self) -> None:
        self.acc: list[int] | None = None

    def step(self, blob: bytes | None) -> None:
        if blob:
            if self.acc is None:
                self.acc = [0] * _CELLS
            _into(self.acc, blob)

    def finalize(self) -> bytes | None:
        return None if self.acc is None else _dense(self.acc)


def accumulate(acc: list[int], blob: bytes | None, sign: int) -> None:
    """Add ``sign`` times the histograms of ``blob`` to ``acc`` (every cell, dense)."""
    if blob:
        _into(acc, blob, sign)


def cells() -> list[int]:
    """Every cell, zero: what ``accumulate`` adds to."""
    return [0] * _CELLS


def histograms(acc: list[int]) -> dict[str, tuple[int, ...]]:
    """Each step's histogram from the dense cells (every canonical event, zeros too)."""
    return {step: tuple(acc[n * TTC_BINS : (n + 1) * TTC_BINS])
            for n, step in enumerate(CANONICAL_EVENTS)}  # fmt: skip


def register(conn: sqlite3.Connection) -> None:
    """``cube_ttc_add`` and ``cube_ttc_sum`` on ``conn``."""
    conn.create_function("cube_ttc_add", 2, add, deterministic=True)
    # typeshed's aggregate protocol takes and gives int only; SQLite passes and takes BLOBs
    conn.create_aggregate("cube_ttc_sum", 1, Sum)  # type: ignore[arg-type]
