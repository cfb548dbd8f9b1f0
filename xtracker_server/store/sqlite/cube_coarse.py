"""Format 13's report cube given format 14's coarser rows in place (store/sqlite/rollup.py
``_prepare``), rather than built again from the clicks: the hour rows of the whole space, the H
rows and the value rows, and the C rows (the H rows per link and campaign) at every level
(cube_schema.LEVELS), each summed in SQL from the rows the cube has. A cube row sums a cohort
of clicks, so the rows of a coarser bucket or key are the sums of its finer ones: the same rows
as the catch-up writes (tests/server/test_cube_store.py checks the cube equals one built from
nothing)."""

from __future__ import annotations

import sqlite3

from xtracker_server.store.sqlite import cube_ttc
from xtracker_server.store.sqlite.cube_schema import (
    ALL,
    COUNTS,
    LEVEL_15M,
    LEVEL_DAY,
    LEVEL_HOUR,
    LEVEL_MS,
    VALUE_ROWS,
    C,
    H,
)

__all__ = ["add_coarse_rows"]

_SUMS = ", ".join(f"sum(c.{column})" for column in COUNTS)
_MONEY = ("sum(c.n), sum(c.units), sum(c.fraction), max(c.scale), sum(c.rn), sum(c.r_units),"
          " sum(c.r_fraction), max(c.r_scale)")  # fmt: skip


def add_coarse_rows(conn: sqlite3.Connection) -> int:
    """Add format 14's rows to a format-13 cube (in the caller's transaction); returns how many
    cube rows were added."""
    conn.create_function("cube_ttc_summed", 1, cube_ttc.summed, deterministic=True)
    conn.execute(
        "INSERT INTO reports.cube_keys (space_id, dim, value, link_id, campaign, adset, ad)"
        f" SELECT DISTINCT space_id, '{C}', NULL, link_id, campaign, NULL, NULL"
        f" FROM reports.cube_keys WHERE dim = '{H}' ORDER BY space_id, link_id, campaign"
    )
    conn.execute("DROP TABLE IF EXISTS temp.cube_c_of")
    conn.execute(  # each H key's C key
        "CREATE TEMP TABLE cube_c_of (h_id INTEGER PRIMARY KEY, c_id INTEGER NOT NULL)"
    )
    conn.execute(
        "INSERT INTO temp.cube_c_of SELECT h.id, k.id FROM reports.cube_keys h"
        f" JOIN reports.cube_keys k ON k.space_id = h.space_id AND k.dim = '{C}'"
        " AND k.link_id IS h.link_id AND k.campaign IS h.campaign WHERE h.dim = ?",
        (H,),
    )
    by_c = " JOIN temp.cube_c_of m ON m.h_id = c.key_id"
    # (the rows summed, the new rows' dim, their level, the new level, the new key, its join)
    parts = [
        (f"c.dim = '{H}'", f"'{H}'", LEVEL_15M, LEVEL_HOUR, "c.key_id", ""),
        (f"c.dim = '{ALL}'", f"'{ALL}'", LEVEL_15M, LEVEL_HOUR, "c.key_id", ""),
        (f"c.dim LIKE '{VALUE_ROWS}%'", "c.dim", LEVEL_15M, LEVEL_HOUR, "c.key_id", ""),
        (f"c.dim = '{H}'", f"'{C}'", LEVEL_15M, LEVEL_15M, "m.c_id", by_c),
        (f"c.dim = '{H}'", f"'{C}'", LEVEL_15M, LEVEL_HOUR, "m.c_id", by_c),
        (f"c.dim = '{H}'", f"'{C}'", LEVEL_DAY, LEVEL_DAY, "m.c_id", by_c),
    ]
    added = 0
    for which, dim, source, level, key, joins in parts:
        step = LEVEL_MS[level]
        bucket = "c.bucket" if level == source else f"c.bucket - c.bucket % {step}"
        head = f"c.space_id, {dim}, {level}, {bucket}, {key}"
        where = f"{which} AND c.level = {source}"
        added += conn.execute(
            f"INSERT INTO reports.cube SELECT {head}, {_SUMS},"
            f" cube_ttc_summed({cube_ttc.CONCAT.format('c.ttc')})"
            f" FROM reports.cube c{joins} WHERE {where} GROUP BY 1, 2, 3, 4, 5"
        ).rowcount
        conn.execute(
            f"INSERT INTO reports.cube_money SELECT {head}, c.currency, {_MONEY}"
            f" FROM reports.cube_money c{joins} WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6"
        )
    conn.execute("DROP TABLE temp.cube_c_of")
    return added
