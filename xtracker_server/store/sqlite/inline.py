"""A command's writer: each write commits on the caller's own thread before it returns.

A command (``xtracker link create …``) makes a few writes and exits. The server's writers
(writer.py: a thread, or a process of its own) batch the writes of many requests, and hand the
answers back through the event loop; a command has no requests to batch and needs no event loop,
whose import alone (asyncio, ssl, sockets) costs more than most commands' work. This writer runs
each write as a batch of one with the same ``commit_batch`` (commit.py), so a write commits, or
fails, exactly as it would in the server, and its outcome goes to the same ``FaultTracker``.

Its ``async`` methods never wait for anything: a coroutine of a store that uses it runs to its end
on its first step (``Store(inline=True)``; the command line drives it without an event loop,
cli/_common.py ``run``)."""

from __future__ import annotations

import sqlite3
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
)
from xtracker_server.store.sqlite.db import open_db
from xtracker_server.store.sqlite.faults import FaultReason, StoreUnavailable, fault_of

__all__ = ["InlineWriter"]

T = TypeVar("T")
A = TypeVar("A")


class InlineWriter:
    """The writer of ``Store(inline=True)``: ``start`` opens its connection, each ``write``
    commits before it returns, ``stop`` closes. ``timeout_s`` (XTRACKER_WRITE_TIMEOUT_S): how
    long a write waits for a lock held by another process (SQLite's busy timeout, otherwise
    store/sqlite/db.py's), then fails with ``StoreUnavailable(LOCKED)``; the write was not made."""

    observer: BatchObserver | None = None
    restarts = 0

    def __init__(
        self,
        path: str,
        *,
        sync: str = "FULL",
        timeout_s: float | None = None,
        health: FaultTracker | None = None,
    ) -> None:
        self._path = path
        self._sync = sync
        self.timeout_s = timeout_s
        self.health = health if health is not None else FaultTracker("writes")
        self._conn: sqlite3.Connection | None = None
        self.batches = 0  # counters, as GroupCommitWriter's
        self.operations = 0

    async def start(self) -> None:
        try:
            conn = open_db(self._path, sync=self._sync)
        except sqlite3.Error as exc:  # as a commit's: a fault of the storage, with its reason
            reason = fault_of(exc, self._path) or FaultReason.IO_ERROR
            raise StoreUnavailable(reason, f"the database could not be opened: {exc}") from exc
        if self.timeout_s is not None:
            conn.execute(f"PRAGMA busy_timeout={max(1, round(self.timeout_s * 1000))}")
        self._conn = conn

    async def stop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def running(self) -> bool:
        return self._conn is not None

    async def write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        result: T = self._commit(Job(fn, args, kwargs or None))
        return result

    async def write_grouped(self, group: GroupOperation[A, T], arg: A) -> T:
        result: T = self._commit(Job(group, (arg,), grouped=True))
        return result

    def _commit(self, job: Job) -> Any:
        conn = self._conn
        if conn is None:
            detail = "the writer is not running"
            self.health.failed(FaultReason.WRITER_DOWN, detail)
            raise StoreUnavailable(FaultReason.WRITER_DOWN, detail)
        started = time.perf_counter()
        try:
            commit_batch(conn, [job])
        except BaseException as exc:  # the commit failed: nothing of it is acknowledged
            error = commit_failed(exc, self._path)
            self.health.failed(error.reason, error.detail)
            if self.observer is not None:
                self.observer.failed(1)
            raise error from exc
        self.batches += 1
        self.operations += 1
        self.health.succeeded()
        if self.observer is not None:
            self.observer.committed(1, time.perf_counter() - started)
        if job.error is not None:
            raise job.error
        return job.result
