"""The sparse time-to-convert cells of a cube row (store/sqlite/cube_ttc.py): what the feed's
upsert adds with ``cube_ttc_add`` and a report sums with ``cube_ttc_sum``, in a real SQLite."""

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
    (total,) = conn.execute("SELECT cube_ttc_sum(ttc) FROM t").fetchone()
    acc: dict[int, int] = {}
    cube_ttc.accumulate(acc, total, +1)
    hist = cube_ttc.histograms(acc)
    assert set(hist) == set(CANONICAL_EVENTS)
    first, second = CANONICAL_EVENTS[0], CANONICAL_EVENTS[1]
    assert hist[first][:5] == (1, 0, 0, 1, 0) and sum(hist[first]) == 2
    assert hist[second][5] == 7 and sum(hist[second]) == 7
    assert all(sum(h) == 0 for s, h in hist.items() if s not in (first, second))
    # the same cells, in any order of adding, give the same bytes (a row compares equal)
    assert cube_ttc.add(cube_ttc.encode({1: 1}), cube_ttc.encode({0: 2})) == cube_ttc.encode(
        {0: 2, 1: 1}
    )
    assert conn.execute("SELECT cube_ttc_sum(ttc) FROM t WHERE k = 3").fetchone() == (None,)
