"""Clicks per window read from the report rollup's counts of them (``report_clicks``, kept with
the report cube: store/sqlite/rollup_activity.py), a window as its UTC days, its 15-minute
buckets and its ends off the grid (those from the clicks' index); without the cube, from the
clicks' index alone."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence

from xtracker_server.store.sqlite import cube_schema
from xtracker_server.store.sqlite.reports_activity import (
    EVERY_LINK,
    RAW,
    SPACE,
    LinkKeys,
    levels,
    one_link,
)

__all__ = ["clicks", "link_clicks"]


def link_clicks(
    conn: sqlite3.Connection,
    space_id: int,
    windows: Sequence[tuple[int, int]],
    links: LinkKeys,
) -> list[dict[int, int]] | None:
    """Per window: clicks per ``link_id`` of ``links`` (0: no link; ``SPACE``: every click),
    from ``report_clicks``; None without the report cube, or while it is built (its catch-up
    counts them with it: store/sqlite/rollup_activity.py)."""
    if not cube_schema.ready(conn):
        return None
    link_sql, link_args = links
    out: list[dict[int, int]] = []
    for f, t in windows:
        counts: dict[int, int] = defaultdict(int)
        for kind, lo, hi in levels(f, t):
            if kind == RAW:
                for link, n in _raw_clicks(conn, space_id, (lo, hi), links):
                    counts[link] += n
                continue
            for link, n in conn.execute(
                f"SELECT link_id, sum(n) FROM report_clicks WHERE space_id = ? AND {link_sql}"
                " AND kind = ? AND bucket >= ? AND bucket < ? GROUP BY link_id",
                (space_id, *link_args, kind, lo, hi),
            ):
                counts[link] += n
        out.append(counts)
    return out


def _raw_clicks(
    conn: sqlite3.Connection, space_id: int, part: tuple[int, int], links: LinkKeys
) -> list[tuple[int, int]]:
    """``report_clicks``' counts of ``part`` (a few minutes), from the clicks' index."""
    time = "created_ms >= ? AND created_ms < ?"
    if links == (EVERY_LINK, (space_id,)):
        sql = f"SELECT coalesce(link_id, 0), count(*) FROM clicks WHERE space_id = ? AND {time}"
        return conn.execute(sql + " GROUP BY 1", (space_id, *part)).fetchall()
    if links[1] == (SPACE,):
        sql = f"SELECT count(*) FROM clicks WHERE space_id = ? AND {time}"
        return [(SPACE, conn.execute(sql, (space_id, *part)).fetchone()[0])]
    (link_id,) = links[1]  # one link (one_link)
    sql = f"SELECT count(*) FROM clicks WHERE link_id = ? AND {time}"
    return [(link_id, conn.execute(sql, (link_id, *part)).fetchone()[0])]


def clicks(
    conn: sqlite3.Connection, space_id: int, window: tuple[int, int], link_id: int | None
) -> int:
    """Clicks in the window, of the space or of one link: from ``report_clicks`` if it answers,
    else counted in the clicks' index."""
    f, t = window
    key = SPACE if link_id is None else link_id
    found = link_clicks(conn, space_id, [window], one_link(key))
    if found is not None:
        return found[0].get(key, 0)
    if link_id is None:
        # clicks_space_time answers (covering)
        sql = "SELECT count(*) FROM clicks WHERE space_id = ?"
        sql += " AND created_ms >= ? AND created_ms < ?"
        return int(conn.execute(sql, (space_id, f, t)).fetchone()[0])
    # link ids are resolved within the space; clicks_link_time alone answers (covering)
    sql = "SELECT count(*) FROM clicks WHERE link_id = ? AND created_ms >= ? AND created_ms < ?"
    return int(conn.execute(sql, (link_id, f, t)).fetchone()[0])
