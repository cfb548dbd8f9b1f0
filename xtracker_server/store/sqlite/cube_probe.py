"""A filtered grouped report's cube rows read by key (store/sqlite/cube.py): rather than every
row of a segment's buckets, the filters joined to each (its keys), the keys the filters keep
are looked up once, and each of the segment's buckets is probed for each of them along the
cube's primary key (space, dim, level, bucket, key). That reads the rows kept alone, however
many other keys the buckets hold, which grows with the traffic (issue 17 §6: a campaign and
two countries of a week read 70 rows, not every campaign and country of those days). Used
where a filter keeps values (not only exclusions) and the probes are fewer than ``MAX_PROBES``;
else the segment's rows are read and filtered as before."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from xtracker_server.domain.filters import Filters
from xtracker_server.store.sqlite.cube_schema import LEVEL_MS

__all__ = ["MAX_PROBES", "Keys", "condition"]

#: Probes (buckets times keys) past which a segment's rows are read in a range instead: a probe
#: costs about as much as a row read, and most of a broad filter's probes find nothing.
MAX_PROBES = 20_000


class Keys:
    """The ids of the keys of each kind of rows that the filters keep, looked up when first
    needed (None: no filter keeps values; every key's rows are read and filtered)."""

    def __init__(self, conn: sqlite3.Connection, space_id: int, filters: Filters) -> None:
        self.conn, self.space_id = conn, space_id
        self.keeps = any(not f.exclude for f in filters.items)
        self.found: dict[tuple[str, str], list[int]] = {}

    def of(self, key_dim: str, joins: str, where: str, args: Sequence[Any]) -> list[int] | None:
        """The keys of ``key_dim`` matching ``where`` (the filters on ``k``, and ``l``, the
        link, when ``joins`` joins it), in order."""
        if not self.keeps:
            return None
        found = self.found.get((key_dim, where))
        if found is None:
            link = " LEFT JOIN main.links l ON l.id = k.link_id" if " l ON " in joins else ""
            found = [r[0] for r in self.conn.execute(
                f"SELECT k.id FROM reports.cube_keys k{link} WHERE k.space_id = ? AND k.dim = ?"
                f" AND {where} ORDER BY k.id", (self.space_id, key_dim, *args)
            )]  # fmt: skip
            self.found[(key_dim, where)] = found
        return found


def condition(ids: Sequence[int], level: int, lo: int, hi: int) -> str | None:
    """SQL on the cube's rows ``c`` of a segment ``[lo, hi)`` of ``level``: its buckets and the
    keys ``ids``, each an equality the primary key seeks (None: too many probes; '': none)."""
    step = LEVEL_MS[level]
    buckets = range(lo - lo % step + (step if lo % step else 0), hi, step)
    if len(buckets) * len(ids) > MAX_PROBES:
        return None
    if not ids or not buckets:
        return ""
    listed = ", ".join(str(int(b)) for b in buckets)
    keys = ", ".join(str(int(i)) for i in ids)
    return f"c.bucket IN ({listed}) AND c.key_id IN ({keys})"
