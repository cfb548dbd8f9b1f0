"""How far a reader has read a table whose row ids may commit out of order: the ``Watermark``
of the live stream's reader (domain/tail.py, whose docstring says how it works) and of the
report rollup (store/sqlite/rollup.py). A module of its own so that the rollup does not import
the live stream's cursor and items (every report command would build them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["GAP_S", "MAX_GAPS", "Watermark"]

#: A gap (an id below one already read) is waited for this long before it is given up.
GAP_S = 30.0
#: At most this many gaps per table are waited for; over it, the oldest ids are given up.
MAX_GAPS = 1000


@dataclass(frozen=True)
class Watermark:
    """How far the reader has read one table (see the module docstring)."""

    high: int = 0
    gaps: Mapping[int, float] = field(default_factory=dict)  # id -> first missed (monotonic s)

    @property
    def low(self) -> int:
        return min(self.gaps) - 1 if self.gaps else self.high

    def advance(
        self,
        read: Iterable[int],
        scanned_to: int,
        now: float,
        *,
        gap_s: float = GAP_S,
        max_gaps: int = MAX_GAPS,
        newest: int | None = None,
    ) -> Watermark:
        """After a poll that read the ids ``read`` among the gaps and in ``(high, scanned_to]``:
        the ids of that range it did not find become gaps, filled and expired gaps go. A gap
        is waited for ``gap_s`` seconds, and at most ``max_gaps`` are: the newest, and none
        more than ``max_gaps`` below ``newest`` (the table's newest id, when a poll reads a
        part of a long backlog: a transaction is not open that long)."""
        got = set(read)
        gaps = {i: t for i, t in self.gaps.items() if i not in got and now - t < gap_s}
        # Only the newest max_gaps ids of a large hole can be kept anyway.
        first = (scanned_to if newest is None else max(newest, scanned_to)) - max_gaps
        for i in range(max(self.high, first) + 1, scanned_to + 1):
            if i not in got:
                gaps[i] = now
        if len(gaps) > max_gaps:
            gaps = {i: gaps[i] for i in sorted(gaps)[-max_gaps:]}
        return Watermark(max(self.high, scanned_to), gaps)

    @classmethod
    def resuming(cls, low: int, seen: Iterable[int], now: float) -> Watermark:
        """A reader's watermark for a client that has ``low`` and ``seen``: the ids between
        them are gaps (the newest ``MAX_GAPS`` of them)."""
        seen = set(seen)
        high = max(seen, default=low)
        return cls(low).advance(seen, high, now)
