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

import abc
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
#: ``fn(conn, [arg, ...]) -> [result, ...]``, one result per argument, in order.
GroupOperation = Callable[[sqlite3.Connection, list[A]], list[T]]


class StoreUnavailable(RuntimeError):
    """The database could not commit; nothing of the batch was acknowledged."""


def is_storage_fault(exc: BaseException) -> bool:
    """Whether ``exc`` says that storage failed rather than the operation: ``StoreUnavailable``
    (the writer is gone, a commit failed), or an SQLite error of the file itself (full, read-only,
    I/O error, lock timeout, damaged). A constraint or a bad statement is the operation's fault."""
    if isinstance(exc, StoreUnavailable | sqlite3.OperationalError):
        return True
    return type(exc) is sqlite3.DatabaseError  # "file is not a database", "malformed"


@dataclass(slots=True)
class Job:
    """One write: ``fn(conn, *args, **kwargs)``, or (``fn`` None) a grouped call of ``group``
    with ``arg``. After its batch ran: ``result``, or the ``error`` it raised."""

    fn: Callable[..., Any] | None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None
    group: GroupOperation[Any, Any] | None = None
    arg: Any = None
    result: Any = None
    error: BaseException | None = None

    def run_alone(self, conn: sqlite3.Connection) -> None:
        if self.fn is not None:
            self.result = self.fn(conn, *self.args, **(self.kwargs or {}))
        else:
            assert self.group is not None
            (self.result,) = self.group(conn, [self.arg])


def commit_batch(conn: sqlite3.Connection, batch: list[Job]) -> None:
    """Run every job of ``batch`` in one transaction and commit it (see the module's docstring):
    optimistically first, then, if a job raised, again with a savepoint around each job, whose
    error is kept in it. Raises only if the transaction itself fails: nothing was committed."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            _run_optimistically(conn, batch)
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            _run_with_savepoints(conn, batch)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _run_optimistically(conn: sqlite3.Connection, batch: list[Job]) -> None:
    """Every job, no savepoints; raises the first error (the caller starts over)."""
    i, n = 0, len(batch)
    while i < n:
        job = batch[i]
        if job.fn is not None:
            job.result = job.fn(conn, *job.args, **(job.kwargs or {}))
            i += 1
            continue
        group = job.group
        j = i + 1
        while j < n and batch[j].group is group:
            j += 1
        assert group is not None
        results = group(conn, [p.arg for p in batch[i:j]])
        for done, result in zip(batch[i:j], results, strict=True):
            done.result = result
        i = j


def _run_with_savepoints(conn: sqlite3.Connection, batch: list[Job]) -> None:
    for job in batch:
        job.result = job.error = None
        conn.execute("SAVEPOINT op")
        try:
            job.run_alone(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            job.error = exc
        conn.execute("RELEASE op")


_Queued = tuple[Job, "asyncio.Future[Any]"]


class Writer(abc.ABC):
    """What the store writes through: ``GroupCommitWriter`` (a thread of this process) or
    ``writer_process.ProcessWriter`` (a process of its own). Both commit as described above."""

    async def write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in the next batch; returns its result once the
        batch is committed."""
        result: T = await self._submit(Job(fn, args, kwargs or None))
        return result

    async def write_grouped(self, group: GroupOperation[A, T], arg: A) -> T:
        """Like ``write``, for ``group(conn, [arg])``; waiting calls of the same ``group`` that
        are next to each other run as one call (see the module's docstring)."""
        result: T = await self._submit(Job(None, group=group, arg=arg))
        return result

    @abc.abstractmethod
    def _submit(self, job: Job) -> asyncio.Future[Any]:
        """Queue ``job`` for the next batch; the future resolves after its commit."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None:
        """Finish every submitted operation, then close."""

    @property
    @abc.abstractmethod
    def running(self) -> bool: ...


class GroupCommitWriter(Writer):
    def __init__(self, path: str, *, sync: str = "FULL", batch_limit: int = 1000) -> None:
        self._path = path
        self._sync = sync
        self._batch_limit = batch_limit
        # The writer's own thread takes operations straight from this queue: the next batch
        # starts as soon as the last commit is done, never waiting for its turn on the event
        # loop (where it would queue behind every request being parsed).
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
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

    def _submit(self, job: Job) -> asyncio.Future[Any]:
        if not self.running:
            raise StoreUnavailable("the writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put((job, future))
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
            conn = self._conn
            assert conn is not None
            try:
                commit_batch(conn, [job for job, _ in batch])
            except BaseException as exc:  # the commit failed: nobody in the batch is acknowledged
                log.error("commit of %d operations failed: %s", len(batch), exc)
                error = StoreUnavailable(f"the database could not commit: {exc}")
            else:
                self.batches += 1
                self.operations += len(batch)
            loop.call_soon_threadsafe(_answer, batch, error)  # one wake-up of the loop per batch
            if stopping:
                return


def _answer(batch: list[_Queued], error: BaseException | None) -> None:
    """On the event loop: tell every caller of a batch how it went (after its commit)."""
    for job, future in batch:
        if future.done():  # the caller went away (cancelled)
            continue
        if error is not None:
            future.set_exception(error)
        elif job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)


def _succeed(future: asyncio.Future[None], result: None) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
