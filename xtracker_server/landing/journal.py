"""The click journal: the file in which the landing keeps clicks that storage could not take,
until they are stored (landing/pending.py, docs/links.md#when-storage-fails).

``<db>.clicks-pending``, beside the database: one JSON object per line, a ``ClickDraft`` each.
Lines are only appended, by a thread of its own, in groups: whatever is waiting when the thread
is free goes in one ``write`` and one ``fsync``, so a burst of clicks costs one flush. A
write that fails (a full disk) is cut off again, so that no torn line precedes the next one.
Once every click in it is stored, the file is emptied (``clear``): in the same queue as the
appends, so that exactly the lines appended before are cut (those still waiting are not even
written) and every line appended after is kept.

One server owns the file at a time (an exclusive ``flock``); a second server on the same
database writes ``<db>.clicks-pending.<pid>``. At start a server takes over the clicks of every
journal whose owner is gone (killed, or stopped while storage was down): their lines are copied
into its own journal, fsynced, and their file deleted. A crash between the two leaves a click in
both; it is stored once, because a click is stored under its uid and a stored uid is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from xtracker_server.domain.clicks import ClickDraft

SUFFIX = ".clicks-pending"
_FIELDS = tuple(f.name for f in dataclasses.fields(ClickDraft))


def journal_path(db: str) -> str | None:
    """The journal of the database ``db``; None for an in-memory database (no journal)."""
    return None if db == ":memory:" else os.path.abspath(os.path.expanduser(db)) + SUFFIX


def encode(draft: ClickDraft) -> bytes:
    """One journal line."""
    return json.dumps(dataclasses.asdict(draft), separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> ClickDraft | None:
    """The click of one journal line; None for a line that does not hold one (torn, garbled)."""
    try:
        obj = json.loads(line)
        draft = ClickDraft(**{name: obj[name] for name in _FIELDS if name in obj})
    except (ValueError, TypeError):
        return None
    ok = isinstance(draft.uid, str) and isinstance(draft.space_id, int)
    return draft if ok and isinstance(draft.created_ms, int) else None


@dataclass
class Recovered:
    """What ``ClickJournal.open`` found: the clicks, and how many lines held none."""

    clicks: list[ClickDraft]
    unreadable: int = 0
    files: int = 0  # journals of servers that are gone, taken over


class ClickJournal:
    def __init__(self, path: str) -> None:
        self.path = path  # this server's journal (``.<pid>`` appended if another owns it)
        self._base = path
        self._fd: int | None = None
        self._size = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtracker-journal")
        #: Lines to append, and ``None`` for a clear, each with its caller's future.
        self._waiting: list[tuple[bytes | None, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ on the event loop

    async def open(self) -> Recovered:
        """Take this server's journal; returns the clicks left in it and in the journals of
        servers that are gone. Raises ``OSError`` if the journal cannot be opened (appends will
        try again)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._open)

    def append(self, drafts: list[ClickDraft]) -> asyncio.Future[None]:
        """Append ``drafts``; the future resolves once they are on disk (fsynced), or fails
        with the ``OSError`` that stopped it."""
        return self._queue(b"".join(encode(d) for d in drafts))

    def clear(self) -> asyncio.Future[None]:
        """Empty the journal of every line appended so far (their clicks are stored); lines
        appended after this call are kept. The future resolves once that is on disk."""
        return self._queue(None)

    def _queue(self, line: bytes | None) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((line, done))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush(), name="xtracker-journal")
        return done

    async def close(self) -> None:
        """Finish the appends and clears asked so far, then let the journal go (deleted if
        empty)."""
        if self._flusher is not None:
            await self._flusher
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)

    async def _flush(self) -> None:
        """Write what waits, in one write and one fsync per turn of the journal's thread."""
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                clears = [i for i, (line, _) in enumerate(batch) if line is None]
                after = clears[-1] + 1 if clears else 0  # what comes before it is cut anyway
                data = b"".join(line for line, _ in batch[after:] if line is not None)
                error: OSError | None = None
                try:
                    await loop.run_in_executor(self._thread, self._write, data, bool(clears))
                except OSError as exc:
                    error = exc
                for _, written in batch:
                    if not written.done():
                        if error is None:
                            written.set_result(None)
                        else:
                            written.set_exception(error)
        finally:
            self._flusher = None

    # ------------------------------------------------------------ on the journal's thread

    def _open(self) -> Recovered:
        fd = self._take()
        found = Recovered(*_read_lines(fd, cut_torn_tail=True))
        self._size = os.fstat(fd).st_size
        for other in sorted(glob.glob(glob.escape(self._base) + ".*")):
            if other == self.path:
                continue
            clicks, unreadable = self._take_over(other)
            if clicks is None:
                continue  # its server runs
            found.clicks.extend(clicks)
            found.unreadable += unreadable
            found.files += 1
        return found

    def _take(self) -> int:
        """Open and lock this server's journal (``.<pid>`` if a running server owns the
        database's), and make sure its name is on disk."""
        if self._fd is not None:
            return self._fd
        for path in (self._base, f"{self._base}.{os.getpid()}"):
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                locked = _lock(fd)
            except BaseException:
                os.close(fd)
                raise
            if not locked:
                os.close(fd)
                continue
            _sync_dir(path)
            self.path, self._fd, self._size = path, fd, os.fstat(fd).st_size
            return fd
        raise OSError(f"{self._base}.{os.getpid()} is locked by another process")

    def _take_over(self, path: str) -> tuple[list[ClickDraft] | None, int]:
        """The clicks of a journal whose server is gone, copied into ours (fsynced) before its
        file is deleted; (None, 0) if its server still runs."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, 0
        try:
            if not _lock(fd):
                return None, 0
            clicks, unreadable = _read_lines(fd, cut_torn_tail=False)
            if clicks:
                self._write(b"".join(encode(d) for d in clicks))
            os.unlink(path)
            _sync_dir(path)
            return clicks, unreadable
        finally:
            os.close(fd)

    def _write(self, data: bytes, clear_first: bool = False) -> None:
        fd = self._take()
        if clear_first and self._size:
            os.ftruncate(fd, 0)
            self._size = 0
            if not data:
                os.fsync(fd)
                return
        start = self._size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)  # no torn line before the next one
            raise
        self._size = start + len(data)

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._size == 0:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)  # still locked: nobody appends to it meanwhile
        finally:
            os.close(fd)


def _read_lines(fd: int, *, cut_torn_tail: bool) -> tuple[list[ClickDraft], int]:
    """Every click in the file, and how many lines held none. A last line without its newline
    was being written when its server died (its visitor was not sent on with it, or it is in
    memory only): with ``cut_torn_tail`` it is cut off, so that the next line starts clean."""
    data = _read_all(fd)
    end = data.rfind(b"\n") + 1
    clicks, unreadable = [], 0
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        draft = decode(line)
        if draft is None:
            unreadable += 1
        else:
            clicks.append(draft)
    if end < len(data):
        unreadable += 1
        if cut_torn_tail:
            os.ftruncate(fd, end)
            os.fsync(fd)
    return clicks, unreadable


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


if sys.platform == "win32":

    def _lock(fd: int) -> bool:
        return True  # no flock: one server per database file

else:
    import fcntl

    def _lock(fd: int) -> bool:
        """Lock the file for this process, unless another one holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _sync_dir(path: str) -> None:
    """Make a file's creation or deletion durable."""
    if sys.platform == "win32":
        return  # a directory cannot be opened for fsync there
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
