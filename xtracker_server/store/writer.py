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
import queue
import sqlite3
import threading
from collections.abc import Callable
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
        # The writer's own thread takes operations straight from this queue: the next batch
        # starts as soon as the last commit is done, never waiting for its turn on the event
        # loop (where it would queue behind every request being parsed).
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._accepting = False
        self.batches = 0  # counters, for tests and /healthz
        self.operations = 0

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(opened,), name="xtracker-writer", daemon=True
        )
        self._thread.start()
        await opened
        self._accepting = True

    async def stop(self) -> None:
        """Finish every queued operation, then close."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._accepting = False
        self._queue.put(None)
        await asyncio.to_thread(thread.join)
        await asyncio.sleep(0)  # the last batch's answers were scheduled before the join ended

    @property
    def running(self) -> bool:
        return self._accepting and self._thread is not None and self._thread.is_alive()

    async def write(self, op: Operation[T]) -> T:
        """Run ``op`` in the next batch; returns its result once the batch is committed."""
        result: T = await self._submit(op, None, None)
        return result

    async def write_grouped(self, group: GroupOperation[A, T], arg: A) -> T:
        """Like ``write``, for ``group(conn, [arg])``; waiting calls of the same ``group`` that
        are next to each other in the queue run as one call (see the module's docstring)."""
        result: T = await self._submit(None, group, arg)
        return result

    def _submit(
        self, op: Operation[Any] | None, group: GroupOperation[Any, Any] | None, arg: Any
    ) -> asyncio.Future[Any]:
        if not self.running:
            raise StoreUnavailable("the writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put(_Pending(op, future, group, arg))
        return future

    def _main(self, opened: asyncio.Future[None]) -> None:
        """The writer thread: open the database, then commit batches until told to stop."""
        loop = self._loop
        assert loop is not None
        try:
            conn = self._conn = open_db(self._path, sync=self._sync)
        except BaseException as exc:
            loop.call_soon_threadsafe(_fail, opened, exc)
            return
        loop.call_soon_threadsafe(_succeed, opened, None)
        try:
            self._serve(loop)
        finally:
            self._conn = None
            conn.close()

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = [first], False
            while len(batch) < self._batch_limit:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            error: BaseException | None = None
            try:
                self._commit(batch)
            except BaseException as exc:  # the commit failed: nobody in the batch is acknowledged
                log.error("commit of %d operations failed: %s", len(batch), exc)
                error = StoreUnavailable(f"the database could not commit: {exc}")
            else:
                self.batches += 1
                self.operations += len(batch)
            loop.call_soon_threadsafe(_answer, batch, error)  # one wake-up of the loop per batch
            if stopping:
                return

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


def _answer(batch: list[_Pending], error: BaseException | None) -> None:
    """On the event loop: tell every caller of a batch how it went (after its commit)."""
    for item in batch:
        if item.future.done():  # the caller went away (cancelled)
            continue
        if error is not None:
            item.future.set_exception(error)
        elif item.error is not None:
            item.future.set_exception(item.error)
        else:
            item.future.set_result(item.result)


def _succeed(future: asyncio.Future[None], result: None) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
