"""The store as the server uses it: one group-commit writer and a few reader threads; or, for
a command (``inline``), everything on the caller's thread, with no event loop
(store/sqlite/inline.py).

Storage faults of either (store/sqlite/faults.py) reach callers as ``StoreUnavailable`` with a
reason,
and each access has the same deadline (``timeout_s``, XTRACKER_WRITE_TIMEOUT_S); ``health``
(store/health.py) is what they last showed."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from xtracker_server.clock import now_ms
from xtracker_server.store.health import StorageHealth
from xtracker_server.store.sqlite.db import attach_reports, connect, open_db
from xtracker_server.store.sqlite.faults import (
    FaultReason,
    RollupBehind,
    StoreUnavailable,
    fault_of,
)
from xtracker_server.store.sqlite.inuse import UseLock, hold_shared
from xtracker_server.store.sqlite.lazy import LazyModule
from xtracker_server.store.sqlite.probe import schema_version, touch_probe
from xtracker_server.store.sqlite.sqlite_store import SqliteOperations
from xtracker_server.store.sqlite.stats import refresh_stats

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from xtracker_server.store.sqlite import rollup
    from xtracker_server.store.sqlite.commit import BatchObserver, GroupOperation
    from xtracker_server.store.sqlite.inline import InlineWriter
    from xtracker_server.store.sqlite.rollup_process import RollupProcess
    from xtracker_server.store.sqlite.rollup_work import RollupWork
    from xtracker_server.store.sqlite.writer import Writer
else:  # imported by the first write or report (store/sqlite/lazy.py): `space list` needs none
    rollup = LazyModule("xtracker_server.store.sqlite.rollup")

T = TypeVar("T")
A = TypeVar("A")


class Store(SqliteOperations):
    """The SQLite store (the Store protocol of store/api.py; its operations: sqlite_store.py)."""

    def __init__(
        self,
        path: str,
        *,
        sync: str = "FULL",
        readers: int = 4,
        writer_process: bool | None = None,
        observer: BatchObserver | None = None,
        timeout_s: float | None = None,
        operations: str | None = None,
        stats_on_open: bool = True,
        report_cube: bool | None = False,
        rollup_process: bool | None = None,
        eager: bool = True,
        inline: bool = False,
    ) -> None:
        self.path = path
        # A command's store (``inline``): reads, writes and the rollup's catch-up run on the
        # caller's thread, so its coroutines never wait and need no event loop (the module's
        # docstring; asyncio is not even imported).
        self.inline = inline
        # Grouped reports from the report cube, which the rollup then keeps (XTRACKER_REPORT_CUBE;
        # None: as the rollup was built, store/sqlite/rollup.py ``with_rollup``)
        self.report_cube = report_cube
        self.timeout_s = timeout_s
        self.health = StorageHealth()
        self.schema = 0  # the schema version, once open
        # Writes go to a process of its own (store/sqlite/writer_process.py: the SQLite work then
        # never waits for the GIL), or to a thread of this one: with ``writer_process=False``, and
        # by always where the writer process cannot run (it is handed its pipes the POSIX way).
        writer_process = os.name == "posix" and writer_process is not False
        # The writer process runs the operations of a registry (store/sqlite/operations.py; tests
        # name their own): the thread runs the same functions.
        # (None: store/operations.py's.) The process writer is imported only where it runs.
        self.writer: Writer | InlineWriter
        if inline:
            from xtracker_server.store.sqlite.inline import InlineWriter

            self.writer = InlineWriter(
                path, sync=sync, timeout_s=timeout_s, health=self.health.writes
            )
        elif writer_process:
            from xtracker_server.store.sqlite.writer_process import STORE_OPERATIONS, ProcessWriter

            self.writer = ProcessWriter(path, sync=sync, timeout_s=timeout_s,
                                        health=self.health.writes,
                                        operations=operations or STORE_OPERATIONS)  # fmt: skip
        else:
            from xtracker_server.store.sqlite.writer import GroupCommitWriter

            self.writer = GroupCommitWriter(
                path, sync=sync, timeout_s=timeout_s, health=self.health.writes
            )
        self.writer.observer = observer  # told of every batch (the server's metrics)
        self._readers: ThreadPoolExecutor | None = None
        self._rollup: ThreadPoolExecutor | None = None
        # The report rollup (store/sqlite/rollup.py) is caught up on a thread and connection
        # of its own, or, from that thread, in a process of its own (``rollup_process``, where
        # it can: store/sqlite/rollup_process.py; its Python then never holds this process's
        # GIL); a command's store (``inline``) on the caller's thread.
        self._rollup_child: RollupProcess | None = None
        if not inline:
            from concurrent.futures import ThreadPoolExecutor

            self._readers = ThreadPoolExecutor(readers, thread_name_prefix="xtracker-read")
            self._rollup = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtracker-rollup")
            if os.name == "posix" and rollup_process is not False:
                from xtracker_server.store.sqlite.rollup_process import RollupProcess

                self._rollup_child = RollupProcess(path, report_cube)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._rollup_work: RollupWork | None = None  # on this process's threads
        self._use_lock: UseLock | None = None
        # Whether opening refreshes the planner's statistics: a server's store does (and then
        # every housekeeping.STATS_EVERY_S); a command's, open for a moment, leaves it to it.
        self._stats_on_open = stats_on_open
        # Bumped when the planner's statistics change: a reader connection opened before
        # reopens (a connection loads them when it opens).
        self._stats_epoch = 0
        # The report rollup is checked (``_check_rollup``) and the writer started when the store
        # opens; not ``eager`` (a command's store, which may only read): the rollup before the
        # first write or report, the writer at the first write (``_start_writes``).
        self._eager = eager
        self._rollup_checked = False
        self._writes_started = False
        self._starting_writes: asyncio.Lock | None = None  # made by the first write

    async def open(self) -> None:
        # Held while the store is open, so that `xtracker restore` refuses to run under it
        # (store/sqlite/inuse.py); raises RestoreInProgress while a restore runs.
        self._use_lock = hold_shared(self.path)
        try:
            try:
                conn = open_db(self.path)  # create and migrate before anyone reads
                try:
                    self.schema = schema_version(conn)
                    # Fresh planner statistics before any other connection opens
                    # (store/sqlite/stats.py).
                    if self._stats_on_open:
                        refresh_stats(conn, every_table=True)
                finally:
                    conn.close()
                if self._eager:
                    self._check_rollup()
            except sqlite3.Error as exc:  # not a database, damaged, not writable: the driver's
                # error stays inside the store ("file is not a database" says what it is)
                reason = fault_of(exc, self.path) or FaultReason.IO_ERROR
                raise StoreUnavailable(reason, str(exc)) from exc
            if self._eager:
                await self.writer.start()
                self._writes_started = True
        except BaseException:
            self._release()
            raise

    def _check_rollup(self) -> None:
        """Drop the report rollup if it was built for another copy of the database, before
        anything is written (store/sqlite/rollup.py ``rebuild_if_stale``) and before a report
        reads it."""
        if not self._rollup_checked:
            rollup.rebuild_if_stale(self.path)
            self._rollup_checked = True

    def _check_rollup_now(self) -> None:
        """``_check_rollup`` on the store's first write or report, its fault a storage fault."""
        try:
            self._check_rollup()
        except sqlite3.Error as exc:
            reason = fault_of(exc, self.path) or FaultReason.IO_ERROR
            raise StoreUnavailable(reason, str(exc)) from exc

    async def _start_writes(self) -> None:
        """Before the first write of a store that is not ``eager``: check the rollup, start the
        writer (once, whichever write comes first)."""
        if self.inline:  # one thread: no other write can be starting it
            self._check_rollup_now()
            await self.writer.start()
            self._writes_started = True
            return
        if self._starting_writes is None:
            import asyncio

            self._starting_writes = asyncio.Lock()
        async with self._starting_writes:
            if not self._writes_started:
                self._check_rollup_now()
                await self.writer.start()
                self._writes_started = True

    async def probe(self) -> None:
        """A write and a read, for their outcomes alone (see store/health.py): what tells an
        idle server that its storage stopped working, or works again."""
        await self.write(touch_probe, now_ms())
        await self.read(schema_version)

    async def refresh_stats(self) -> list[str]:
        """Analyse the tables whose planner statistics are missing or stale (store/sqlite/stats.py):
        the database's in the writer (whose connection knows which tables the hot writes
        use), the report rollup's on its thread. Reader connections then reopen, to load
        them. Returns the tables analysed."""
        analysed: list[str] = await self.write(refresh_stats)
        analysed += await self._on_rollup_thread(self._refresh_rollup_stats)
        if analysed:
            self._stats_epoch += 1
        return analysed

    def _refresh_rollup_stats(self) -> list[str]:
        if self._rollup_child is not None:
            if self._rollup_child.pid is None:  # no report rollup built by this store
                return []
            analysed: list[str] = self._rollup_child.call("refresh_stats")
            return analysed
        if self._rollup_work is None:  # no report rollup built by this store
            return []
        return self._rollup_work.refresh_stats()

    async def catch_up_reports(
        self, budget_s: float | None = None, *, cube_may_lag: bool = False,
        background: bool = False,
    ) -> int:  # fmt: skip
        """Bring the report rollup up to everything committed so far (see
        store/sqlite/rollup.py); ``budget_s``: for about that long at most, then
        ``StoreUnavailable`` (``REBUILDING``) if it is still behind (the rounds done are kept);
        ``cube_may_lag``: not waiting for a report cube being built."""
        if not self._rollup_checked:
            self._check_rollup_now()
        chunk = rollup.CHUNK if budget_s is None else rollup.SLICE_CHUNK
        pause_s = 0.0
        if background:  # short rounds, a pause after each (rollup.BACKGROUND_CHUNK)
            chunk, pause_s = rollup.BACKGROUND_CHUNK, rollup.ROUND_PAUSE_S
        try:
            return await self._on_rollup_thread(
                self._catch_up, chunk, budget_s, cube_may_lag, pause_s
            )
        except RollupBehind as exc:
            raise StoreUnavailable(
                FaultReason.REBUILDING,
                f"the reports are being built ({exc.progress} read so far); they answer when"
                " it is done: retry later",
            ) from None

    async def _on_rollup_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the rollup's thread (on the caller's, ``inline``)."""
        if self._rollup is None:
            return fn(*args)
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(self._rollup, fn, *args)

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a thread of its own, for work that takes long (a backup); on the
        caller's, ``inline``."""
        if self.inline:
            return fn(*args)
        import asyncio

        return await asyncio.to_thread(fn, *args)

    def _catch_up(
        self, chunk: int, budget_s: float | None, cube_may_lag: bool, pause_s: float
    ) -> int:
        # On the rollup's thread; its connection is opened by the first catch-up, so a process
        # that never reports (``xtracker worker``) never builds a rollup.
        if self._rollup_child is not None:
            fed: int = self._rollup_child.call("catch_up", chunk, budget_s, cube_may_lag, pause_s)
            return fed
        if self._rollup_work is None:
            from xtracker_server.store.sqlite.rollup_work import RollupWork

            self._rollup_work = RollupWork(self.path, self.report_cube)
        return self._rollup_work.catch_up(chunk, budget_s, cube_may_lag, pause_s)

    async def close(self) -> None:
        await self.writer.stop()
        if self._rollup is not None:
            self._rollup.shutdown(wait=True)
        if self._rollup_child is not None:
            self._rollup_child.close()
        if self._rollup_work is not None:
            self._rollup_work.close()
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._release()

    def _release(self) -> None:
        if self._use_lock is not None:
            self._use_lock.release()
            self._use_lock = None

    async def write(self, op: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``op(conn, *args, **kwargs)`` in the next group commit. ``op`` is one of the
        writer's operations (store/sqlite/operations.py) and its arguments are picklable: its name
        and they may travel to the writer process."""
        if not self._writes_started:
            await self._start_writes()
        return await self.writer.write(op, *args, **kwargs)

    async def write_grouped(self, group: GroupOperation[A, T], arg: A) -> T:
        """``group(conn, [arg, ...])`` in the next group commit, sharing the call with the
        waiting calls next to it (GroupCommitWriter.write_grouped)."""
        if not self._writes_started:
            await self._start_writes()
        return await self.writer.write_grouped(group, arg)

    async def read(self, op: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``op(conn, *args, **kwargs)`` on a reader connection (sees committed data)."""
        tracker = self.health.reads
        if self._readers is None:  # inline: on the caller's thread
            try:
                result = self._read(_bind(op, args, kwargs))
            except StoreUnavailable as exc:
                tracker.failed(exc.reason, exc.detail)
                raise
            if tracker.fault is not None:
                tracker.succeeded()
            return result
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._readers, self._read, _bind(op, args, kwargs))
        expired: list[bool] = []  # set by the timer: the cancellation below is its doing
        timer = None
        if self.timeout_s is not None:
            timer = loop.call_later(self.timeout_s, _expire_read, future, expired)
        try:
            result = await future
        except StoreUnavailable as exc:
            tracker.failed(exc.reason, exc.detail)
            raise
        except asyncio.CancelledError:
            if not expired:
                raise
            detail = f"the read took longer than {self.timeout_s:g} s (XTRACKER_WRITE_TIMEOUT_S)"
            tracker.failed(FaultReason.TIMEOUT, detail)
            raise StoreUnavailable(FaultReason.TIMEOUT, detail) from None
        finally:
            if timer is not None:
                timer.cancel()
        if tracker.fault is not None:
            tracker.succeeded()
        return result

    def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.epoch != self._stats_epoch:
            self._drop_reader(conn)  # opened before the statistics changed: load them
            conn = None
        try:
            if conn is None:
                conn = attach_reports(connect(self.path, readonly=True), self.path)
                self._local.conn = conn
                self._local.epoch = self._stats_epoch
                with self._lock:
                    self._conns.append(conn)
            return op(conn)
        except sqlite3.Error as exc:
            reason = fault_of(exc, self.path)
            if reason is None:
                raise
            if conn is not None and reason is not FaultReason.LOCKED:
                self._drop_reader(conn)  # opened again by the next read: it may work by then
            raise StoreUnavailable(reason, f"the database could not be read: {exc}") from exc

    def _drop_reader(self, conn: sqlite3.Connection) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        conn.close()


def _expire_read(future: asyncio.Future[Any], expired: list[bool]) -> None:
    if not future.done():
        expired.append(True)
        future.cancel()  # the thread may go on; its result is dropped


def _bind(
    op: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[sqlite3.Connection], T]:
    def bound(conn: sqlite3.Connection) -> T:
        return op(conn, *args, **kwargs)

    return bound
