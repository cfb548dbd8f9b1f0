"""The group-commit writer (ARCHITECTURE.md §3).

Every write in the server goes through one ``GroupCommitWriter``. A request hands it an
operation (a function of a connection) and awaits the result. The writer takes whatever
operations are waiting, up to ``batch_limit``, runs them all in ONE transaction on its own
thread, commits, and only then resolves the requests' futures. One fsync covers the whole batch,
which is what makes ``synchronous=FULL`` affordable; and no request is answered before the
commit that holds its data.

Each operation runs inside a savepoint: one that raises is rolled back alone and its caller
gets the exception, while the rest of the batch commits. If the commit itself fails, every
caller in the batch gets the error and nothing is acknowledged.
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
Operation = Callable[[sqlite3.Connection], T]


class StoreUnavailable(RuntimeError):
    """The database could not commit; nothing of the batch was acknowledged."""


@dataclass
class _Pending:
    op: Operation[Any]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


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
            for item in batch:
                conn.execute("SAVEPOINT op")
                try:
                    item.result = item.op(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    item.error = exc
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
