"""The group-commit writer (docs/architecture.md, "The write path").

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
itself fails, or an operation meets a storage fault (a full disk, a read-only or damaged file:
store/sqlite/faults.py), every caller in the batch gets ``StoreUnavailable`` with the reason and
nothing is acknowledged.

Each write has a deadline (``timeout_s``, XTRACKER_WRITE_TIMEOUT_S): past it, its caller gets
``StoreUnavailable(TIMEOUT)`` instead of waiting for a frozen disk or a long lock. The write is
then dropped if it has not reached the database yet, and may still commit if it has (a retried
event is then answered ``duplicate``). Every outcome goes to the writes' ``FaultTracker``
(store/health.py): what /healthz reports.

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
import time
from collections.abc import Callable
from typing import Any, TypeVar

from xtracker_server.store.health import FaultTracker
from xtracker_server.store.sqlite.commit import (
    BatchObserver,
    GroupOperation,
    Job,
    commit_batch,
    commit_failed,
    is_storage_fault,
)
from xtracker_server.store.sqlite.db import open_db
from xtracker_server.store.sqlite.faults import (
    FaultReason,
    StoreUnavailable,
)
from xtracker_server.store.sqlite.wal import IDLE_S, LIMIT_BYTES, WalKeeper

log = logging.getLogger("xtracker.store")

T = TypeVar("T")
A = TypeVar("A")

__all__ = ["BatchObserver", "GroupCommitWriter", "GroupOperation", "Job", "StoreUnavailable",
           "Writer", "commit_batch", "is_storage_fault"]  # fmt: skip


_Queued = tuple[Job, "asyncio.Future[Any]"]


class Writer(abc.ABC):
    """What the store writes through: ``GroupCommitWriter`` (a thread of this process) or
    ``writer_process.ProcessWriter`` (a process of its own). Both commit as described above.

    ``timeout_s``: each write's deadline (None: none). ``health``: where outcomes go."""

    def __init__(self, *, timeout_s: float | None, health: FaultTracker | None) -> None:
        self.timeout_s = timeout_s
        self.health = health if health is not None else FaultTracker("writes")

    observer: BatchObserver | None = None
    restarts = 0  # writer processes started again after one died (ProcessWriter)

    async def write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in the next batch; returns its result once the
        batch is committed."""
        result: T = await self._await(Job(fn, args, kwargs or None))
        return result

    async def write_grouped(self, group: GroupOperation[A, T], arg: A) -> T:
        """Like ``write``, for ``group(conn, [arg])``; waiting calls of the same ``group`` that
        are next to each other run as one call (see the module's docstring)."""
        result: T = await self._await(Job(group, (arg,), grouped=True))
        return result

    async def _await(self, job: Job) -> Any:
        try:
            future = self._submit(job)
        except StoreUnavailable as exc:
            self.health.failed(exc.reason, exc.detail)
            raise
        if self.timeout_s is None:
            return await future
        # A timer, not asyncio.wait_for: no task per write on the hot path.
        timer = future.get_loop().call_later(self.timeout_s, self._expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[Any]) -> None:
        if future.done():
            return
        detail = (
            f"the write did not commit within {self.timeout_s:g} s (XTRACKER_WRITE_TIMEOUT_S);"
            " it may still commit"
        )
        future.set_exception(StoreUnavailable(FaultReason.TIMEOUT, detail))
        self.health.failed(FaultReason.TIMEOUT, detail)

    def _committed(self) -> None:
        self.health.succeeded()

    def _failed(self, error: StoreUnavailable, count: int) -> None:
        log.debug("commit of %d operations failed: %s", count, error)
        self.health.failed(error.reason, error.detail, count)

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
    def __init__(
        self,
        path: str,
        *,
        sync: str = "FULL",
        batch_limit: int = 1000,
        timeout_s: float | None = None,
        health: FaultTracker | None = None,
        wal_limit_bytes: int = LIMIT_BYTES,
    ) -> None:
        super().__init__(timeout_s=timeout_s, health=health)
        self._path = path
        self._sync = sync
        self._batch_limit = batch_limit
        self.wal = WalKeeper(path, limit_bytes=wal_limit_bytes)  # checkpoints (store/sqlite/wal.py)
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
            raise StoreUnavailable(FaultReason.WRITER_DOWN, "the writer is not running")
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
        conn = self._conn
        assert conn is not None
        while True:
            try:
                first = self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                self.wal.idle(conn)
                continue
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
            # A write whose caller was already answered (past its deadline) is not done late.
            batch = [item for item in batch if not item[1].done()]
            if batch:
                self._commit(loop, batch)
                self.wal.after_batch(conn, waiting=not self._queue.empty())
            if stopping:
                return

    def _commit(self, loop: asyncio.AbstractEventLoop, batch: list[_Queued]) -> None:
        error: StoreUnavailable | None = None
        conn = self._conn
        assert conn is not None
        started = time.perf_counter()
        try:
            commit_batch(conn, [job for job, _ in batch])
        except BaseException as exc:  # the commit failed: nobody in the batch is acknowledged
            error = commit_failed(exc, self._path)
            if self.observer is not None:
                self.observer.failed(len(batch))
        else:
            self.batches += 1
            self.operations += len(batch)
            if self.observer is not None:
                self.observer.committed(len(batch), time.perf_counter() - started)
        loop.call_soon_threadsafe(self._answer, batch, error)  # one wake-up of the loop per batch

    def _answer(self, batch: list[_Queued], error: StoreUnavailable | None) -> None:
        """On the event loop: the outcome to the health tracker and to every caller."""
        if error is None:
            self._committed()
        else:
            self._failed(error, len(batch))
        _answer(batch, error)


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
