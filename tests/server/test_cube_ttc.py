"""The sparse time-to-convert cells of a cube row (store/sqlite/cube_ttc.py): what the feed's
upsert adds with ``cube_ttc_add`` and a report sums with ``CONCAT`` and ``add_concat``, in a real
SQLite."""

from __future__ import annotations

import sqlite3

from xtracker_server.store.sqlite import cube_ttc
from xtracker_server.store.sqlite.cube_ttc import TTC_BINS
from xtracker_wire import CANONICAL_EVENTS


def test_cells_add_up_and_a_row_whose_cells_cancel_is_null() -> None:
    conn = sqlite3.connect(":memory:")
    cube_ttc.register(conn)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, ttc BLOB)")
    upsert = ("INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE"
              " SET ttc = cube_ttc_add(ttc, excluded.ttc)")  # fmt: skip
    conn.execute(upsert, (1, cube_ttc.encode({3: 2, 0: 1})))
    conn.execute(upsert, (1, cube_ttc.encode({3: -2, TTC_BINS + 5: 7, 4: 0})))
    conn.execute(upsert, (2, cube_ttc.encode({3: 1})))
    conn.execute(upsert, (3, cube_ttc.encode({9: 1})))
    conn.execute(upsert, (3, cube_ttc.encode({9: -1})))
    assert conn.execute("SELECT ttc FROM t WHERE k = 3").fetchone() == (None,)
    concat = f"SELECT {cube_ttc.CONCAT.format('ttc')} FROM t"
    (total,) = conn.execute(concat).fetchone()
    hist = cube_ttc.histograms(cube_ttc.add_concat(None, total, +1))
    assert set(hist) == set(CANONICAL_EVENTS)
    first, second = CANONICAL_EVENTS[0], CANONICAL_EVENTS[1]
    assert hist[first][:5] == (1, 0, 0, 1, 0) and sum(hist[first]) == 2
    assert hist[second][5] == 7 and sum(hist[second]) == 7
    assert all(sum(h) == 0 for s, h in hist.items() if s not in (first, second))
    # the same cells, in any order of adding, give the same bytes (a row compares equal)
    assert cube_ttc.add(cube_ttc.encode({1: 1}), cube_ttc.encode({0: 2})) == cube_ttc.encode(
        {0: 2, 1: 1}
    )
    # no cells: NULL (rows whose cells are all zero, or no rows), which adds nothing
    assert conn.execute(concat + " WHERE k = 3").fetchone() == (None,)
    assert conn.execute(concat + " WHERE k = 4").fetchone() == (None,)
    assert cube_ttc.add_concat(None, None, +1) is None
    assert cube_ttc.histograms(None) == dict.fromkeys(CANONICAL_EVENTS, (0,) * TTC_BINS)


def test_concatenated_cells_add_and_subtract_exactly() -> None:
    """A group's rows' cells read as one value (``CONCAT``), each row's BLOB whole whatever
    bytes it holds (counts over 2**8, 2**32, negative ones: the rows a dimension's blanks
    subtract), added with a sign, equal the cells added one by one."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (g INTEGER, ttc BLOB)")
    rows = [
        (1, {0: 1, 5: 300, TTC_BINS * 3 + 39: 2**33}),
        (1, None),
        (1, {5: -1, TTC_BINS + 1: 0x0A0D00}),  # bytes that are newlines, NUL, CR in text
        (2, {TTC_BINS * 2: 7}),
        (2, {TTC_BINS * 2: 1, 1: 1}),
        # bytes that are no UTF-8: an overlong NUL, a surrogate, a lone continuation byte
        (3, {2: 0x80C0, 3: 0x80A0ED, 4: 0xBF}),
    ]
    for g, cells in rows:
        conn.execute("INSERT INTO t VALUES (?, ?)", (g, cells and cube_ttc.encode(cells)))
    sql = f"SELECT g, {cube_ttc.CONCAT.format('ttc')} FROM t GROUP BY g ORDER BY g"
    acc = None
    for _, concat in conn.execute(sql):
        acc = cube_ttc.add_concat(acc, concat, +1)
    expected = [0] * cube_ttc.CELLS
    for _, cells in rows:
        for index, n in (cells or {}).items():
            expected[index] += n
    assert acc == tuple(expected)
    (_, one) = conn.execute(sql.replace("GROUP BY g ORDER BY g", "WHERE g = 2")).fetchone()
    assert cube_ttc.add_concat(tuple(expected), one, -1) == tuple(
        [n - (8 if i == TTC_BINS * 2 else 1 if i == 1 else 0) for i, n in enumerate(expected)]
    )
    hist = cube_ttc.histograms(acc)
    assert (
        hist[CANONICAL_EVENTS[3]][39] == 2**33
        and hist[CANONICAL_EVENTS[2]][0] == 8
        and hist[CANONICAL_EVENTS[0]][5] == 299
    )


def test_a_groups_histograms_are_added_up_when_first_read() -> None:
    """``Histograms`` (a report's group) holds its rows' values and signs; read, it equals the
    histograms ``add_concat`` adds up, a dict's equal, every canonical event present."""
    a = cube_ttc.encode({0: 2, TTC_BINS + 3: 5})
    b = cube_ttc.encode({0: 1, TTC_BINS * 3 + 39: 7})
    assert a is not None and b is not None
    lazy = cube_ttc.Histograms([(a + b, +1), (b, -1)])
    expected = cube_ttc.histograms(cube_ttc.add_concat(None, a, +1))
    assert lazy == expected and expected == lazy and dict(lazy) == expected
    assert lazy[CANONICAL_EVENTS[0]][0] == 2 and lazy[CANONICAL_EVENTS[1]][3] == 5
    assert sum(lazy[CANONICAL_EVENTS[3]]) == 0  # added, then taken away
    assert list(lazy) == list(CANONICAL_EVENTS) and len(lazy) == len(CANONICAL_EVENTS)
    assert repr(lazy) == repr(expected)
