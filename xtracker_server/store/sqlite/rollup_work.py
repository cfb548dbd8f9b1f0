"""The report rollup's connection and what is done with it (store/sqlite/rollup.py): its
catch-up and its planner statistics, a driver's error made a storage fault (``fault_of``). The
one place for it, wherever it runs: on the store's rollup thread, on a command's thread, or in
the rollup's process (store/sqlite/rollup_process.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from xtracker_server.store.sqlite.faults import StoreUnavailable, fault_of

__all__ = ["RollupWork"]


class RollupWork:
    """The rollup of the database ``path`` (``cube``: as ``open_rollup`` takes it), its
    connection opened by the first catch-up: a process that never reports never builds one."""

    def __init__(self, path: str, cube: bool | None) -> None:
        self.path, self.cube = path, cube
        self.conn: sqlite3.Connection | None = None

    def catch_up(
        self, chunk: int, budget_s: float | None, cube_may_lag: bool, pause_s: float = 0.0
    ) -> int:
        """``rollup.catch_up``; ``RollupBehind`` as it raises it."""
        from xtracker_server.store.sqlite import rollup

        with self._faults():
            if self.conn is None:
                self.conn = rollup.open_rollup(self.path, cube=self.cube)
            return rollup.catch_up(self.conn, chunk=chunk, budget_s=budget_s,
                                   cube_may_lag=cube_may_lag, pause_s=pause_s)  # fmt: skip

    def refresh_stats(self) -> list[str]:
        """The rollup's planner statistics refreshed (store/sqlite/stats.py), if it is open."""
        from xtracker_server.store.sqlite.stats import refresh_stats

        if self.conn is None:
            return []
        with self._faults():
            return [f"reports.{t}" for t in refresh_stats(self.conn, "reports")]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """A storage fault of the driver's as ``StoreUnavailable``; any other error as it is."""
        try:
            yield
        except sqlite3.Error as exc:
            reason = fault_of(exc, self.path)
            if reason is None:
                raise
            raise StoreUnavailable(reason, f"the report rollup failed: {exc}") from exc
