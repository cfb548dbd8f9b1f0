"""The report rollup's catch-up (store/sqlite/rollup.py) in a process of its own: where the
server's store (store/sqlite/runtime.py) runs it.

The catch-up is mostly Python (summing the cube's rows: store/sqlite/cube_feed.py). On a thread
of the server, it holds the server's GIL for most of each round, and requests wait for it. In a
process of its own only the CPU is shared, and at a lower priority (``NICE``): under a burst
the requests come first, and the catch-up takes what the machine leaves. A report still waits
until the rollup is caught up (``Store.catch_up_reports``), so its numbers never lag. (Measured
with the report cube on, ``bench/growth.py --cube`` at 5,000,000 events: ``/r``'s p99 69 ms
against 106 ms on a thread; ingest's and binds' within the runs' swing.)

``RollupProcess`` is the server's side, called on the store's rollup thread (its calls block on
a pipe, without the GIL). The child, ``python -m xtracker_server.store.sqlite.rollup_process``,
is started by the store's first catch-up (a process that never reports, ``xtracker worker``,
starts none). Over two pipes, the server sends a call, ``(name, args)``, one at a time, and the
child answers ``(True, result)`` or ``(False, exception)``. The child keeps the rollup's
connection (store/sqlite/rollup_work.py, as the thread does); a storage fault travels back as
``StoreUnavailable`` (``fault_of`` reads the driver's error codes where they are raised), an
error that cannot travel as what it was (writer_child's ``_portable``), ``RollupBehind`` as it is;
its warnings go to the server's stderr. It holds the database's use lock
(store/sqlite/inuse.py) as the server does, ignores SIGINT and SIGTERM (the server's to
handle), and exits when its pipe closes: when the store closes, or the server dies. If it dies,
the call gets ``StoreUnavailable`` and the next call starts another.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from xtracker_server.store.sqlite.faults import FaultReason, StoreUnavailable
from xtracker_server.store.sqlite.rollup_work import RollupWork
from xtracker_server.store.sqlite.writer_child import _portable

__all__ = ["NICE", "RollupProcess", "main"]

#: How much lower the catch-up's priority is than the server's (``os.nice``).
NICE = 5


class RollupProcess:
    """The child that catches the rollup of ``path`` up; ``call`` runs one of its functions
    (``catch_up``, ``refresh_stats``). Its methods block: they run on the rollup's thread."""

    def __init__(self, path: str, cube: bool | None, nice: int = NICE) -> None:
        self._path, self._cube, self._nice = path, cube, nice
        self._proc: subprocess.Popen[bytes] | None = None
        self._to: Connection | None = None
        self._from: Connection | None = None
        self._lock = threading.Lock()  # one call at a time (the rollup's thread is one)
        self.started = 0  # processes started, for tests

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def call(self, name: str, *args: Any) -> Any:
        """``name(*args)`` in the child (started if none runs): its result, or what it
        raised."""
        with self._lock:
            if self._proc is None:
                self._start()
            assert self._to is not None and self._from is not None
            try:
                self._to.send((name, args))
                ok, value = self._from.recv()
            except (EOFError, OSError) as exc:
                code = self._stop()
                raise StoreUnavailable(
                    FaultReason.IO_ERROR,
                    f"the report rollup's process stopped (exit status {code}: {exc!r}); retry",
                ) from None
        if not ok:
            raise value
        return value

    def _start(self) -> None:
        child_in, to_child = os.pipe()  # (read end, write end)
        from_child, child_out = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        cube = "none" if self._cube is None else str(int(self._cube))
        try:
            argv = [str(child_in), str(child_out), self._path, cube, str(self._nice)]
            self._proc = subprocess.Popen(
                [sys.executable, "-m", __name__, *argv],
                env=env,
                pass_fds=(child_in, child_out),
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            os.close(to_child)
            os.close(from_child)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        self._to = Connection(to_child, readable=False)
        self._from = Connection(from_child, writable=False)
        self.started += 1

    def _stop(self) -> int | None:
        """Close the pipes (the child exits when it reads their end) and wait for it."""
        for conn in (self._to, self._from):
            if conn is not None:
                conn.close()
        self._to = self._from = None
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            return proc.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:  # in a round that takes long: it ends with it
            return None

    def close(self) -> None:
        """Stop the child (after its call in progress, if any)."""
        with self._lock:
            self._stop()


#: How long closing waits for the child to exit (it exits at once unless a round is running).
_EXIT_WAIT_S = 30.0


# ------------------------------------------------------------------------- the child's side


def _run(work: RollupWork, name: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
    """A call of the server's, as its answer: ``(True, result)`` or ``(False, exception)``."""
    functions: dict[str, Callable[..., Any]] = {
        "catch_up": work.catch_up,
        "refresh_stats": work.refresh_stats,
    }
    fn = functions.get(name)
    try:
        if fn is None:
            raise LookupError(f"{name!r} is not a function of the rollup's process")
        return True, fn(*args)
    except Exception as exc:
        return _portable((False, exc))


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's to handle: we stop when it does
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child_in, child_out, path, cube, nice = argv
    import logging

    # What the rollup says (a rollup built again, or by an older xtracker) goes to the
    # server's stderr, marked as this process's (the delivery worker's child does the same).
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(levelname)s:  (report rollup) %(message)s")  # fmt: skip
    if int(nice):
        os.nice(int(nice))
    inbox = Connection(int(child_in), writable=False)
    outbox = Connection(int(child_out), readable=False)
    from xtracker_server.store.sqlite.inuse import hold_shared

    work = RollupWork(path, None if cube == "none" else cube == "1")
    with hold_shared(path):  # a restore waits for this process too
        try:
            while True:
                try:
                    name, args = inbox.recv()
                except EOFError:  # the store closed, or the server is gone
                    return 0
                try:
                    outbox.send(_run(work, name, args))
                except OSError:  # the server is gone
                    return 0
        finally:
            work.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
