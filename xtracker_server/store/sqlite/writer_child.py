"""The writer process itself: what ``python -m xtracker_server.store.sqlite.writer_child`` runs, the
child that ``ProcessWriter`` (store/sqlite/writer_process.py, where the protocol is described)
starts.
It opens the database, says ``("ready", None)`` (or ``("error", message)``), then reads batches
of jobs off its pipe, runs each job's operation (looked up by name in the registry the server
handed it, ``_Registry``) through ``commit_batch`` (store/sqlite/writer.py), and answers each batch
once it has committed. Between batches it keeps the WAL bounded (``WalKeeper``,
store/sqlite/wal.py).
Besides the operations its jobs name, it imports only that batch logic, the WAL keeper and the
classification of storage faults (store/sqlite/faults.py): never the client
(tests/test_packages.py).
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import signal
import sys
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from xtracker_server.store.sqlite.commit import Job, commit_batch, commit_failed
from xtracker_server.store.sqlite.faults import FaultReason
from xtracker_server.store.sqlite.wal import IDLE_S, LIMIT_BYTES, WalKeeper

__all__ = ["STOP", "main", "serve"]

#: What the server sends to stop the writer: not a pickle, which a batch always is.
STOP = b"stop"


def _outcome(job: Job) -> tuple[bool, Any]:
    if job.error is not None:  # rare; an exception class may not survive the trip: checked
        return _portable((False, job.error))
    return True, job.result


def _portable(outcome: tuple[bool, Any]) -> tuple[bool, Any]:
    """The outcome, or an error saying why it cannot travel back."""
    try:
        pickle.loads(pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        ok, value = outcome
        if ok:
            why = "committed, but the result could not be sent back"
        else:  # the operation raised (and was rolled back); say what it raised
            why = f"{type(value).__name__}: {value} (this exception could not be sent back)"
        return False, RuntimeError(f"{why}: {exc!r}")
    return outcome


def serve(
    inbox: Connection,
    outbox: Connection,
    path: str,
    sync: str,
    operations: Mapping[str, tuple[str, str]],
    wal_limit_bytes: int = LIMIT_BYTES,
) -> int:
    from xtracker_server.store.sqlite.db import open_db

    try:
        conn = open_db(path, sync=sync)
    except Exception as exc:
        outbox.send(("error", f"{type(exc).__name__}: {exc}"))
        return 1
    outbox.send(("ready", None))
    wal = WalKeeper(path, limit_bytes=wal_limit_bytes)
    registry = _Registry(operations)
    try:
        while True:
            try:
                if not inbox.poll(IDLE_S):
                    wal.idle(conn)
                    continue
                data = inbox.recv_bytes()
            except EOFError:  # the server is gone
                return 0
            if data == STOP:
                return 0
            answer: tuple[str, tuple[str, str] | list[tuple[bool, Any]]]
            try:
                jobs: list[Job] = pickle.loads(data)
                for job in jobs:
                    assert isinstance(job.op, str)
                    job.op = registry.get(job.op)
            except Exception as exc:  # e.g. an operation's module that does not import here
                failed = FaultReason.COMMIT_FAILED
                answer = ("fail", (failed.value, f"the writer could not read the batch: {exc!r}"))
            else:
                try:
                    commit_batch(conn, jobs)
                except Exception as exc:
                    error = commit_failed(exc, path)
                    answer = ("fail", (error.reason.value, error.detail))
                else:
                    answer = ("batch", [_outcome(job) for job in jobs])
            try:
                outbox.send(answer)
            except (pickle.PicklingError, TypeError, AttributeError):
                outcomes = answer[1]
                assert isinstance(outcomes, list)  # a result that would not pickle
                outbox.send(("batch", [_portable(o) for o in outcomes]))
            except OSError:  # the server is gone; what was committed stays committed
                return 0
            if answer[0] == "batch":  # after the answer: the checkpoint does not delay it
                wal.after_batch(conn, waiting=inbox.poll(0))
    finally:
        conn.close()


class _Registry:
    """The writer process's operations: the table the server handed it (name -> module and
    function), each imported the first time a job names it."""

    def __init__(self, table: Mapping[str, tuple[str, str]]) -> None:
        self._table = table
        self._loaded: dict[str, Callable[..., Any]] = {}

    def get(self, name: str) -> Callable[..., Any]:
        fn = self._loaded.get(name)
        if fn is None:
            if name not in self._table:
                return _unknown(name)
            module, qualname = self._table[name]
            fn = self._loaded[name] = getattr(importlib.import_module(module), qualname)
        return fn


def _unknown(name: str) -> Callable[..., Any]:
    """What a job naming no operation of the registry runs: it fails alone."""

    def refuse(conn: Any, *args: Any, **kwargs: Any) -> Any:
        raise LookupError(f"{name!r} is not an operation of the writer process")

    return refuse


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's to handle: we stop when it does
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child_in, child_out, path = argv
    inbox = Connection(int(child_in), writable=False)
    outbox = Connection(int(child_out), readable=False)
    sync = os.environ.get("XTRACKER_WRITER_SYNC", "FULL")
    wal_limit = int(os.environ.get("XTRACKER_WRITER_WAL_LIMIT", LIMIT_BYTES))
    table = json.loads(os.environ.get("XTRACKER_WRITER_OPERATIONS", "{}"))
    operations = {name: (m, f) for name, (m, f) in table.items()}
    return serve(inbox, outbox, path, sync, operations, wal_limit)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
