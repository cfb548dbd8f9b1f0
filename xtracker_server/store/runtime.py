"""The store as the server uses it: one group-commit writer and a few reader threads."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from xtracker_server.store.db import attach_reports, connect, open_db
from xtracker_server.store.inuse import UseLock, hold_shared
from xtracker_server.store.rollup import catch_up, open_rollup, rebuild_if_stale
from xtracker_server.store.writer import BatchObserver, GroupCommitWriter, GroupOperation, Writer
from xtracker_server.store.writer_process import ProcessWriter

T = TypeVar("T")
A = TypeVar("A")


class Store:
    def __init__(
        self,
        path: str,
        *,
        sync: str = "FULL",
        readers: int = 4,
        writer_process: bool | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        self.path = path
        # Writes go to a process of its own (store/writer_process.py: the SQLite work then never
        # waits for the GIL), or to a thread of this one: with ``writer_process=False``, and by
        # default where the writer process cannot run (it is handed its pipes the POSIX way).
        if writer_process is None:
            writer_process = os.name == "posix"
        self.writer: Writer = (
            ProcessWriter(path, sync=sync) if writer_process else GroupCommitWriter(path, sync=sync)
        )
        self.writer.observer = observer  # told of every batch (the server's metrics)
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="xtracker-read")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # The report rollup (store/rollup.py) is built on a thread and connection of its own.
        self._rollup = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtracker-rollup")
        self._rollup_conn: sqlite3.Connection | None = None
        self._use_lock: UseLock | None = None

    async def open(self) -> None:
        # Held while the store is open, so that `xtracker restore` refuses to run under it
        # (store/inuse.py); raises RestoreInProgress while a restore runs.
        self._use_lock = hold_shared(self.path)
        try:
            open_db(self.path).close()  # create and migrate before anyone reads
            rebuild_if_stale(self.path)  # before any write (store/rollup.py)
            await self.writer.start()
        except BaseException:
            self._release()
            raise

    async def catch_up_reports(self) -> int:
        """Bring the report rollup up to everything committed so far (see store/rollup.py)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._rollup, self._catch_up)

    def _catch_up(self) -> int:
        # On the rollup's thread; its connection is opened by the first catch-up, so a process
        # that never reports (``xtracker worker``) never builds a rollup.
        if self._rollup_conn is None:
            self._rollup_conn = open_rollup(self.path)
        return catch_up(self._rollup_conn)

    async def close(self) -> None:
        await self.writer.stop()
        self._rollup.shutdown(wait=True)
        if self._rollup_conn is not None:
            self._rollup_conn.close()
            self._rollup_conn = None
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
        """Run ``op(conn, *args, **kwargs)`` in the next group commit. ``op`` is a named
        function and its arguments are picklable: they may travel to the writer process."""
        return await self.writer.write(op, *args, **kwargs)

    async def write_grouped(self, group: GroupOperation[A, T], arg: A) -> T:
        """``group(conn, [arg, ...])`` in the next group commit, sharing the call with the
        waiting calls next to it (GroupCommitWriter.write_grouped)."""
        return await self.writer.write_grouped(group, arg)

    async def read(self, op: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``op(conn, *args, **kwargs)`` on a reader connection (sees committed data)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read, _bind(op, args, kwargs))

    def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = attach_reports(connect(self.path, readonly=True), self.path)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return op(conn)


def _bind(
    op: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[sqlite3.Connection], T]:
    def bound(conn: sqlite3.Connection) -> T:
        return op(conn, *args, **kwargs)

    return bound
