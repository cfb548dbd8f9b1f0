"""The group-commit writer (ARCHITECTURE.md §3).

Every write in the server goes through one ``GroupCommitWriter``. A request hands it an
operation (a function of a connection) and awaits the result. The writer takes whatever
operations are waiting, up to ``batch_limit``, runs them all in ONE transaction on its own
thread, commits, and only then resolves the requests' futures. One fsync covers the whole batch,
which is what makes ``synchronous=FULL`` affordable; and no request is answered before the
commit that holds its data.

A batch first runs optimistically, with no savepoints: operations almost never raise, and a
savepoint costs two statements per operation. If one does raise, the whole transaction is rolled
back and the batch runs again with a savepoint around each operation, so the one that raised is
rolled back alone and its caller gets the exception, while the rest of the batch commits.
Operations are functions of the database only, so running one twice is harmless. If the commit
itself fails, every caller in the batch gets the error and nothing is acknowledged.

Hot operations can be *grouped* (``write_grouped``): consecutive waiting calls of the same group
function run as one call with the list of their arguments, so per-batch work (a lookup shared by
every row) is done once. On the savepoint path each runs alone, with a list of one.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from xtracker_server.store.db import open_db

log = logging.getLogger("xtracker.store")

T = TypeVar("T")
A = TypeVar("A")
Operation = Callable[[sqlite3.Connection], T]
#: ``fn(conn, [arg, ...]) -> [result, ...]``, one result per argument, in order.
GroupOperation = Callable[[sqlite3.Connection, list[A]], list[T]]


class StoreUnavailable(RuntimeError):
    """The database could not commit; nothing of the batch was acknowledged."""


@dataclass(slots=True)
class _Pending:
    op: Operation[Any] | None  # None: a grouped call of ``group`` with ``arg``
    future: asyncio.Future[Any]
    group: GroupOperation[Any, Any] | None = None
    arg: Any = None
    result: Any = None
    error: BaseException | None = None

    def run_alone(self, conn: sqlite3.Connection) -> None:
        if self.op is not None:
            self.result = self.op(conn)
        else:
            assert self.group is not None
            (self.result,) = self.group(conn, [self.arg])


class GroupCommitWriter:
    def __init__(self, path: str, *, sync: str = "FULL", batch_limit: int = 1000) -> None:
        self._path = path
        self._sync = sync
        self._batch_limit = batch_limit
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtracker-writer")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # counters, for tests and /healthz
        self.operations = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(
            self._thread, lambda: open_db(self._path, sync=self._sync)
        )
        self._task = asyncio.create_task(self._run(), name="xtracker-writer")

    async def stop(self) -> None:
        """Finish every queued operation, then close."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.close)
        self._thread.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def write(self, op: Operation[T]) -> T:
        """Run ``op`` in the next batch; returns its result once the batch is committed."""
        if not self.running:
            raise StoreUnavailable("the writer is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(op, future))
        return await future

    async def write_grouped(self, group: GroupOperation[A, T], arg: A) -> T:
        """Like ``write``, for ``group(conn, [arg])``; waiting calls of the same ``group`` that
        are next to each other in the queue run as one call (see the module's docstring)."""
        if not self.running:
            raise StoreUnavailable("the writer is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(None, future, group, arg))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._batch_limit and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                await loop.run_in_executor(self._thread, self._commit, batch)
            except BaseException as exc:  # the commit failed: nobody in the batch is acknowledged
                log.error("commit of %d operations failed: %s", len(batch), exc)
                error = StoreUnavailable(f"the database could not commit: {exc}")
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            self.batches += 1
            self.operations += len(batch)
            for item in batch:
                if item.future.done():  # the caller went away (cancelled)
                    continue
                if item.error is not None:
                    item.future.set_exception(item.error)
                else:
                    item.future.set_result(item.result)

    def _commit(self, batch: list[_Pending]) -> None:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                self._run_optimistically(conn, batch)
            except Exception:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                self._run_with_savepoints(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _run_optimistically(conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        """Every operation, no savepoints; raises the first error (the caller starts over)."""
        i, n = 0, len(batch)
        while i < n:
            item = batch[i]
            if item.op is not None:
                item.result = item.op(conn)
                i += 1
                continue
            group = item.group
            j = i + 1
            while j < n and batch[j].group is group:
                j += 1
            assert group is not None
            results = group(conn, [p.arg for p in batch[i:j]])
            for pending, result in zip(batch[i:j], results, strict=True):
                pending.result = result
            i = j

    @staticmethod
    def _run_with_savepoints(conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        for item in batch:
            item.result = item.error = None
            conn.execute("SAVEPOINT op")
            try:
                item.run_alone(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                item.error = exc
            conn.execute("RELEASE op")
