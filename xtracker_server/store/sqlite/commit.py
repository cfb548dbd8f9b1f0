"""How a batch of writes commits (docs/architecture.md, "The write path"): ``commit_batch`` runs
the jobs of a batch in one transaction, optimistically, then with a savepoint around each if one
raised (the writer's docstring, store/sqlite/writer.py, says why). Shared by every writer: the
group-commit thread and process (writer.py, writer_child.py) and a command's inline writer
(inline.py). Imports no asyncio: a command that writes on its own thread needs none."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from xtracker_server.store.sqlite.faults import (
    FaultReason,
    StoreUnavailable,
    fault_of,
    storage_fault,
)

__all__ = ["BatchObserver", "GroupOperation", "Job", "commit_batch", "commit_failed",
           "is_storage_fault"]  # fmt: skip

T = TypeVar("T")
A = TypeVar("A")
#: ``fn(conn, [arg, ...]) -> [result, ...]``, one result per argument, in order.
GroupOperation = Callable[[sqlite3.Connection, list[A]], list[T]]


class BatchObserver(Protocol):
    """Told of every batch a writer handled (the server's metrics, xtracker_server/metrics.py).
    Called from the writer's thread or the event loop: it must be quick and thread-safe."""

    def committed(self, operations: int, seconds: float) -> None: ...

    def failed(self, operations: int) -> None: ...


def is_storage_fault(exc: BaseException) -> bool:
    """Whether ``exc`` says that storage failed rather than the operation: ``StoreUnavailable``
    (the writer is gone, a commit failed), or an SQLite error of the file itself (full, read-only,
    I/O error, lock timeout, damaged), as ``faults.storage_fault`` classifies it. A constraint
    or a bad statement is the operation's fault."""
    return storage_fault(exc) is not None


@dataclass(slots=True)
class Job:
    """One write: ``op(conn, *args, **kwargs)``, or (``grouped``) ``op(conn, [args[0], ...])``
    shared with the waiting jobs of the same ``op`` next to it. ``op`` is a function, or its
    name in the writer's operations while the job travels to the writer process
    (store/sqlite/operations.py). After its batch ran: ``result``, or the ``error`` it raised."""

    op: Callable[..., Any] | str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None
    grouped: bool = False
    result: Any = None
    error: BaseException | None = None

    def run_alone(self, conn: sqlite3.Connection) -> None:
        op = self.op
        assert callable(op)
        if self.grouped:
            (self.result,) = op(conn, [self.args[0]])
        else:
            self.result = op(conn, *self.args, **(self.kwargs or {}))


def commit_batch(conn: sqlite3.Connection, batch: list[Job]) -> None:
    """Run every job of ``batch`` in one transaction and commit it (see the module's docstring):
    optimistically first, then, if a job raised, again with a savepoint around each job, whose
    error is kept in it. Raises if the transaction itself fails, or if a job met a storage
    fault (the others would meet it too): nothing was committed."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            _run_optimistically(conn, batch)
        except Exception as exc:
            if storage_fault(exc) is not None:
                raise
            _roll_back(conn)
            conn.execute("BEGIN IMMEDIATE")
            _run_with_savepoints(conn, batch)
        conn.execute("COMMIT")
    except BaseException:
        _roll_back(conn)
        raise


def commit_failed(exc: BaseException, path: str) -> StoreUnavailable:
    """What a writer answers every caller of a batch whose ``commit_batch`` raised ``exc``:
    nothing of it was committed; the reason is the storage's fault, if it is one."""
    reason = fault_of(exc, path) or FaultReason.COMMIT_FAILED
    return StoreUnavailable(reason, f"the database could not commit: {exc}")


def _roll_back(conn: sqlite3.Connection) -> None:
    # SQLite may have rolled back on its own (after an I/O error or a full disk); a ROLLBACK
    # that fails must not hide the error that made it necessary.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _run_optimistically(conn: sqlite3.Connection, batch: list[Job]) -> None:
    """Every job, no savepoints; raises the first error (the caller starts over)."""
    i, n = 0, len(batch)
    while i < n:
        job = batch[i]
        op = job.op
        assert callable(op)
        if not job.grouped:
            job.result = op(conn, *job.args, **(job.kwargs or {}))
            i += 1
            continue
        j = i + 1
        while j < n and batch[j].grouped and batch[j].op is op:
            j += 1
        results = op(conn, [p.args[0] for p in batch[i:j]])
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
            if storage_fault(exc) is not None:
                raise
            conn.execute("ROLLBACK TO op")
            job.error = exc
        conn.execute("RELEASE op")
