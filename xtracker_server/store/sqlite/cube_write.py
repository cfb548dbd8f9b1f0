"""Writing the report cube's summed differences (store/sqlite/cube_feed.py ``apply``): one
upsert per row and per row's currency, and the rows whose uids all left taken away."""

from __future__ import annotations

import sqlite3
from typing import Any

from xtracker_server.store.sqlite import cube_ttc
from xtracker_server.store.sqlite.cube_schema import COUNTS

__all__ = ["TTC", "Target", "write"]

#: A cube row's place: (space_id, dim, level, bucket, key_id).
Target = tuple[int, str, int, int, int]
#: Where a row's cells start in its sums, after its counts (cube_feed.py ``_Deltas.rows``).
TTC = len(COUNTS)
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


def write(
    conn: sqlite3.Connection, rows: dict[Target, list[Any]],
    money: dict[Target, dict[str, list[int]]], taken_off: set[Target],
) -> None:  # fmt: skip
    """The summed differences, one upsert per cube row (in key order: each finds its page next
    to the last one's; a row whose difference is nothing left out); a row whose uids all left
    goes."""
    cube_ttc.register(conn)
    encode = cube_ttc.encode
    conn.executemany(_UPSERT_ROW, [(*target, *acc[:TTC], encode(acc[TTC]))
                                   for target, acc in sorted(rows.items())
                                   if any(acc[:TTC]) or any(acc[TTC].values())])  # fmt: skip
    conn.executemany(_UPSERT_MONEY, [(*target, currency, *m) for target, by in sorted(money.items())
                                     for currency, m in sorted(by.items()) if any(m)])  # fmt: skip
    taken = sorted(taken_off)
    conn.executemany(f"DELETE FROM reports.cube WHERE {_KEY_IS} AND clicks = 0", taken)
    conn.executemany(f"DELETE FROM reports.cube_money WHERE {_KEY_IS} AND n = 0", taken)
