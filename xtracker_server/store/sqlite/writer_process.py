"""The group-commit writer in a process of its own: what ``xtracker serve`` and ``xtracker
worker`` write through.

It keeps every promise of ``GroupCommitWriter`` (store/sqlite/writer.py), whose batch logic it runs
(``commit_batch``): operations waiting together run in one transaction, one fsync covers them,
and nobody is answered before the commit that holds their data. The difference is where the
SQLite work runs. In a thread, the writer shares the server's GIL: after every step of SQLite
(which runs without the GIL) it has to win the GIL back from an event loop that is busy parsing
requests, and a batch of 25 clicks that takes 1.3 ms alone took 4.4 ms in the server. In its own
process it never waits, and the event loop only pickles the batch to a pipe and reads the
answer when the pipe is readable (``bench/clicks.py``: /r went from 0.41 to 0.58 of the bare
baseline).

This module is the server's side, ``ProcessWriter``; the child runs store/sqlite/writer_child.py
(``python -m xtracker_server.store.sqlite.writer_child``). The protocol, over two pipes:

- the server sends a batch as its list of jobs, pickled at once (if that fails, the jobs that
  cannot be pickled are left out and their callers alone get the error), with at most two
  batches unanswered; new jobs wait in the server meanwhile and go together as the next one;
- the writer commits the batches one after the other and answers each with
  ``("batch", [(ok, result or exception), ...])`` in the order of its jobs, or with
  ``("fail", (reason, message))`` if its commit failed (nobody in it is acknowledged; the
  reason is a ``FaultReason`` value, store/sqlite/faults.py);
- the server's ends of both pipes are non-blocking transports of its event loop.

A job travels as the name of its operation and its arguments, never as a function: the
writer process runs only the operations of a fixed registry (``OPERATIONS`` of the module named
by ``operations``: store/sqlite/operations.py). It is handed the registry's table (name -> module
and function) when it starts, and imports an operation's module the first time a job names it, as
an unpickled function used to be imported. A write of anything else is refused in the server,
for its caller alone (``TypeError``). Arguments and results are
picklable data (domain records). If the writer process dies, every waiting caller gets
``StoreUnavailable``, and writes are refused (``/healthz`` says so) until the new writer process
started in its place runs (``RESPAWN_DELAY_S``). It ignores SIGINT and SIGTERM (they are the
server's to handle) and exits when the server closes the pipe, including when the server is
killed.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from xtracker_server.store.health import FaultTracker
from xtracker_server.store.sqlite import writer_child
from xtracker_server.store.sqlite.faults import FaultReason, StoreUnavailable
from xtracker_server.store.sqlite.wal import LIMIT_BYTES
from xtracker_server.store.sqlite.writer import Job, Writer
from xtracker_server.store.sqlite.writer_child import STOP

log = logging.getLogger("xtracker.store")

#: Batches sent and not yet answered. With two, the writer finds the next batch waiting in its
#: pipe the moment it has committed one, instead of idling until this process's loop has read
#: the answer and sent more.
_IN_FLIGHT = 2
#: A writer process that died is replaced after this long, then after twice as long while
#: starting it fails, up to the maximum.
RESPAWN_DELAY_S = 0.5
RESPAWN_MAX_DELAY_S = 10.0
_Waiting = tuple[Job, "asyncio.Future[Any]"]
#: The registry the store's writer process runs (store/sqlite/operations.py).
STORE_OPERATIONS = "xtracker_server.store.sqlite.operations"


def load_operations(module: str) -> Mapping[str, Callable[..., Any]]:
    """The ``OPERATIONS`` of ``module``: name -> function."""
    operations: Mapping[str, Callable[..., Any]] = importlib.import_module(module).OPERATIONS
    return operations


class ProcessWriter(Writer):
    """``write`` and ``write_grouped`` take operations of the registry ``operations`` (see the
    module's docstring) with picklable arguments: their names travel to the writer process."""

    def __init__(
        self,
        path: str,
        *,
        sync: str = "FULL",
        batch_limit: int = 1000,
        timeout_s: float | None = None,
        health: FaultTracker | None = None,
        wal_limit_bytes: int = LIMIT_BYTES,
        operations: str = STORE_OPERATIONS,
    ) -> None:
        super().__init__(timeout_s=timeout_s, health=health)
        self._path = path
        self._sync = sync
        self._batch_limit = batch_limit
        self._wal_limit_bytes = (
            wal_limit_bytes  # the writer process's WalKeeper (store/sqlite/wal.py)
        )
        self._operations = operations
        registry = load_operations(operations)
        self._names = {fn: name for name, fn in registry.items()}
        self._table = json.dumps({name: [fn.__module__, fn.__qualname__]
                                  for name, fn in registry.items()})  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        self._to: asyncio.WriteTransport | None = None
        self._from: asyncio.ReadTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[None] | None = None
        self._waiting: list[_Waiting] = []  # submitted, not sent yet
        self._sent: deque[list[asyncio.Future[Any]]] = deque()  # batches sent, oldest first
        # When each batch of _sent was sent, and when the last answer came: the writer commits
        # one batch after the other, so one's commit time runs from the later of the two.
        self._sent_at: deque[float] = deque()
        self._answered_at = 0.0
        self._flush_soon = False
        self._idle = asyncio.Event()
        self._accepting = False
        self._closing = False
        self._respawning: asyncio.Task[None] | None = None
        self.batches = 0  # counters, for tests and /healthz
        self.operations = 0
        self.restarts = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self._spawn()
        except BaseException:
            self._closing = True
            await self._shut()
            raise
        self._accepting = True

    async def _spawn(self) -> None:
        """Start the writer process and wait until it has opened the database."""
        loop = asyncio.get_running_loop()
        child_in, to_child = os.pipe()  # (read end, write end)
        from_child, child_out = os.pipe()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),  # what imports here does
            "XTRACKER_WRITER_SYNC": self._sync,
            "XTRACKER_WRITER_WAL_LIMIT": str(self._wal_limit_bytes),
            "XTRACKER_WRITER_OPERATIONS": self._table,
        }
        try:
            argv = [str(child_in), str(child_out), self._path]
            self._proc = subprocess.Popen(
                [sys.executable, "-m", writer_child.__name__, *argv],
                env=env,
                pass_fds=(child_in, child_out),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(child_in)
            os.close(child_out)
        # Both ends are non-blocking transports of the loop: the server never waits on a pipe.
        self._ready = loop.create_future()
        self._to, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(to_child, "wb", buffering=0)
        )
        self._from, _ = await loop.connect_read_pipe(
            lambda: _Answers(self._on_answer, self._died),
            os.fdopen(from_child, "rb", buffering=0),
        )
        await self._ready

    async def _respawn(self) -> None:
        """After the writer process died: start another, at once and then with a growing
        pause while that fails. Writes are refused (503) until it runs."""
        delay = RESPAWN_DELAY_S
        try:
            while not self._closing:
                await asyncio.sleep(delay)
                await self._shut()
                try:
                    await self._spawn()
                except Exception as exc:
                    # Said once, not at every attempt: the writes' tracker reports the fault.
                    level = logging.ERROR if delay == RESPAWN_DELAY_S else logging.DEBUG
                    log.log(level, "the writer process could not be started again: %s", exc)
                    delay = min(delay * 2, RESPAWN_MAX_DELAY_S)
                    continue
                self.restarts += 1
                self._accepting = True
                log.warning("a new writer process runs (restart %d)", self.restarts)
                return
        finally:
            self._respawning = None

    async def stop(self) -> None:
        """Finish every submitted operation, then close."""
        if self._proc is None and self._respawning is None:
            return
        self._accepting = False
        while self._waiting or self._sent:
            self._idle.clear()
            await self._idle.wait()
        self._closing = True
        if self._respawning is not None:
            self._respawning.cancel()
        if self._to is not None and not self._to.is_closing():
            self._to.write(_frame(STOP))
        await self._shut()

    @property
    def running(self) -> bool:
        # A writer that exits closes its pipe, which ``_Answers`` sees at once (``_died``).
        return self._accepting

    def _submit(self, job: Job) -> asyncio.Future[Any]:
        if not self.running:
            raise StoreUnavailable(FaultReason.WRITER_DOWN, "the writer is not running")
        assert self._loop is not None
        job.op = self._name_of(job.op)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._waiting.append((job, future))
        if len(self._sent) < _IN_FLIGHT and not self._flush_soon:
            # Everything submitted in this turn of the loop goes in the same batch.
            self._flush_soon = True
            self._loop.call_soon(self._flush)
        return future

    def _name_of(self, op: Callable[..., Any] | str) -> str:
        name = op if isinstance(op, str) else self._names.get(op)
        if name is None:
            what = getattr(op, "__qualname__", repr(op))
            raise TypeError(
                f"{what} is not an operation of the writer process (add it to OPERATIONS"
                f" in {self._operations})"
            )
        return name

    def _flush(self) -> None:
        self._flush_soon = False
        if len(self._sent) < _IN_FLIGHT and self._waiting:
            # A write whose caller was already answered (past its deadline) is not sent late.
            self._waiting = [w for w in self._waiting if not w[1].done()]
        while len(self._sent) < _IN_FLIGHT and self._waiting and self._to is not None:
            batch = self._waiting[: self._batch_limit]
            del self._waiting[: self._batch_limit]
            try:
                # One pickle for the batch (much cheaper per job than one each).
                data = pickle.dumps([job for job, _ in batch], pickle.HIGHEST_PROTOCOL)
            except Exception:
                batch = _sendable(batch)
                if not batch:
                    continue
                data = pickle.dumps([job for job, _ in batch], pickle.HIGHEST_PROTOCOL)
            self._sent.append([future for _, future in batch])
            self._sent_at.append(time.perf_counter())
            self._to.write(_frame(data))

    def _on_answer(self, message: bytes) -> None:
        try:
            kind, payload = pickle.loads(message)
        except Exception as exc:  # a result this process cannot unpickle
            kind = "fail"
            payload = (FaultReason.COMMIT_FAILED, f"the writer's answer could not be read: {exc!r}")
        if kind == "ready":
            _settle(self._ready, None)
            return
        if kind == "error":  # it could not open the database
            _settle(self._ready, exc=RuntimeError(payload))
            return
        sent = self._sent.popleft()
        started = max(self._sent_at.popleft(), self._answered_at)
        self._answered_at = time.perf_counter()
        if kind == "batch":
            self.batches += 1
            self.operations += len(sent)
            self._committed()
            if self.observer is not None:
                self.observer.committed(len(sent), self._answered_at - started)
            for future, (ok, value) in zip(sent, payload, strict=True):
                if ok:
                    _settle(future, value)
                else:
                    _settle(future, exc=value)
        else:
            reason, text = payload
            error = StoreUnavailable(FaultReason(reason), text)
            self._failed(error, len(sent))
            if self.observer is not None:
                self.observer.failed(len(sent))
            for future in sent:
                _settle(future, exc=error)
        self._flush()
        if not self._waiting and not self._sent:
            self._idle.set()

    def _died(self) -> None:
        if self._closing:  # the pipe was closed by stop()
            return
        was_running, self._accepting = self._accepting, False
        code = self._proc.poll() if self._proc is not None else None
        reason = f"the writer process exited (exit code {code})"
        error = StoreUnavailable(FaultReason.WRITER_DOWN, reason)
        _settle(self._ready, exc=error)
        failed = [*(f for batch in self._sent for f in batch), *(f for _, f in self._waiting)]
        for future in failed:
            _settle(future, exc=error)
        if self.observer is not None:
            for batch in self._sent:  # sent, never answered: not committed, as far as we know
                self.observer.failed(len(batch))
        self._sent.clear()
        self._sent_at.clear()
        self._waiting = []
        self._idle.set()
        log.error("%s", reason)
        if was_running:
            self._failed(error, len(failed))
        if was_running:  # not while (re)starting: that has its own error path
            assert self._loop is not None
            self._respawning = self._loop.create_task(self._respawn())

    async def _shut(self) -> None:
        for transport in (self._to, self._from):
            if transport is not None:
                transport.close()
        self._to = self._from = None
        proc, self._proc = self._proc, None
        if proc is not None:
            await asyncio.to_thread(proc.wait)


class _Answers(asyncio.Protocol):
    """Reads the writer's answers off its pipe: frames as ``multiprocessing.connection`` writes
    them (a 4-byte big-endian length, or -1 and an 8-byte one, then the bytes)."""

    def __init__(self, on_message: Callable[[bytes], None], on_lost: Callable[[], None]) -> None:
        self._buffer = bytearray()
        self._on_message = on_message
        self._on_lost = on_lost

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = struct.unpack_from("!i", buffer)
            head = 4
            if size == -1:
                if len(buffer) < 12:
                    return
                (size,) = struct.unpack_from("!Q", buffer, 4)
                head = 12
            if len(buffer) < head + size:
                return
            message = bytes(buffer[head : head + size])
            del buffer[: head + size]
            self._on_message(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()


def _sendable(batch: list[_Waiting]) -> list[_Waiting]:
    """The jobs of ``batch`` that can be pickled; the callers of the others get the error."""
    kept = []
    for job, future in batch:
        try:
            pickle.dumps(job, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            _settle(future, exc=TypeError(f"this operation cannot go to the writer process: {exc}"))
        else:
            kept.append((job, future))
    return kept


def _settle(
    future: asyncio.Future[Any] | None, value: Any = None, *, exc: BaseException | None = None
) -> None:
    if future is None or future.done():  # the caller went away (cancelled)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


def _frame(data: bytes) -> bytes:
    """``data`` framed as ``multiprocessing.connection.Connection.recv_bytes`` reads it."""
    size = len(data)
    if size > 0x7FFFFFFF:
        return struct.pack("!iQ", -1, size) + data
    return struct.pack("!i", size) + data
