"""The live stream: Server-Sent Events with each click, event and delivery attempt of a space,
as it is committed (docs/reports.md#the-live-stream).

It tails the database rather than hooking the write path, so it shows what any process wrote
to the file: this server, an ``xtracker worker``, the CLI. ``LiveStreams`` is the one reader of
the server: while at least one stream is open, every ``poll_s`` it reads what was committed
since its watermarks, for every space at once (``store.tail.tail_poll``: one read transaction
per poll, whatever the number of streams), and hands each stream its space's rows. It stops
when the last stream closes. Ids may commit out of order (several writers): the reader waits
for the gaps below the ids it has read, and each stream's cursor (``domain.tail``) names what
it delivered, so every row reaches every stream once, also across a reconnect.

A stream gets every row the reader reads after it joined. One that resumes (``Last-Event-ID``
or ``?since=``) first reads its own backlog from its cursor up to the reader's position at that
moment (``tail_range``, bounded batches); its cursor skips the rows it then gets twice.

Open streams are capped per credential and per space (429 past it). A stream ends with a last
message ``event: end`` saying why: its credential stopped working (rotated past its grace,
revoked, deleted: checked every ``recheck_s`` through the Authenticator), its space is gone,
the client fell too far behind, or the server is stopping (uvicorn waits for open responses
before it shuts down, so on SIGINT/SIGTERM every stream is told to finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from xtracker_server.auth import Authenticator
from xtracker_server.domain.tail import Ids, Marks, StreamCursor, TailItem
from xtracker_server.errors import ApiError
from xtracker_server.store.api import Store

log = logging.getLogger("xtracker")

#: Rows of one table per backlog read of a resuming stream.
BATCH = 500
#: A client this many messages behind is dropped (``end: too_slow``); it resumes from its id.
MAX_PENDING = 10_000

#: Why a stream ended (the ``reason`` of its last message).
CREDENTIAL_EXPIRED = "credential_expired"
SPACE_DELETED = "space_deleted"
TOO_SLOW = "too_slow"
SHUTDOWN = "shutdown"
END_REASONS = (CREDENTIAL_EXPIRED, SPACE_DELETED, TOO_SLOW, SHUTDOWN)


def sse_data(item: TailItem) -> bytes:
    """The ``event:`` and ``data:`` lines of an item (the same for every stream)."""
    data = json.dumps({"type": item.kind, **item.data}, separators=(",", ":"))
    return f"event: {item.kind}\ndata: {data}\n\n".encode()


def sse_message(data: bytes, cursor: str) -> bytes:
    return f"id: {cursor}\n".encode() + data


def sse_end(reason: str) -> bytes:
    data = json.dumps({"type": "end", "reason": reason}, separators=(",", ":"))
    return f"event: end\ndata: {data}\n\n".encode()


@dataclass(frozen=True)
class _Tick:
    items: list[TailItem]
    data: list[bytes]  # each item's sse_data, encoded once for all the space's streams
    lows: Ids  # the reader's watermarks after the poll that read ``items``


@dataclass(eq=False)
class Subscription:
    """One open stream: its space, its credential (hashed) and what the reader sent it."""

    space_id: int
    credential: bytes
    #: The reader's watermarks when the stream joined: it gets every row read after them.
    start: Marks | None = None
    queue: asyncio.Queue[_Tick | str] = field(default_factory=asyncio.Queue)
    pending: int = 0  # items in the queue
    ended: str | None = None  # the reason, once told to end

    def push(self, tick: _Tick) -> None:
        if self.ended is not None:
            return
        if self.pending + len(tick.items) > MAX_PENDING:
            self.end(TOO_SLOW)
            return
        self.pending += len(tick.items)
        self.queue.put_nowait(tick)

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            self.queue.put_nowait(reason)


class LiveStreams:
    """The open streams of the server and their one reader."""

    def __init__(
        self,
        store: Store,
        auth: Authenticator,
        *,
        poll_s: float = 0.2,
        max_per_credential: int = 4,
        max_per_space: int = 16,
        heartbeat_s: float = 15.0,
        recheck_s: float = 1.0,
    ) -> None:
        self.store = store
        self.auth = auth
        self.poll_s = poll_s
        self.max_per_credential = max_per_credential
        self.max_per_space = max_per_space
        self.heartbeat_s = heartbeat_s
        self.recheck_s = recheck_s
        #: Reads of the stream tables (the reader's polls and the backlog reads of resuming
        #: streams), shown by GET /admin/streams.
        self.reads = 0
        self._subs: dict[int, set[Subscription]] = {}
        self._per_credential: Counter[bytes] = Counter()
        self._reader: asyncio.Task[None] | None = None
        self._marks: Marks | None = None
        self._ready = asyncio.Event()  # set while the reader has watermarks
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}

    # ------------------------------------------------------------------ life cycle

    @property
    def closing(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    def start(self) -> None:
        """Chain onto the server's SIGINT/SIGTERM handlers (installed before the app starts),
        so that a stop request ends the streams first. Only possible in the main thread."""
        self._loop = asyncio.get_running_loop()
        _ = self.closing
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue
            self._previous[sig] = previous
            signal.signal(sig, self._chained(previous))

    def _chained(self, previous: Callable[[int, FrameType | None], Any]) -> Any:
        def handler(sig: int, frame: FrameType | None) -> None:
            self.close_soon()
            previous(sig, frame)

        return handler

    def close_soon(self) -> None:
        """Finish every stream (safe from a signal handler or another thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_all)

    def _close_all(self) -> None:
        self.closing.set()
        for subs in self._subs.values():
            for sub in subs:
                sub.end(SHUTDOWN)

    async def stop(self) -> None:
        """Finish the streams and the reader, and give the signal handlers back."""
        self._close_all()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError):  # not the main thread any more
                signal.signal(sig, previous)
        self._previous.clear()

    # ------------------------------------------------------------------ streams

    def open(self, space_id: int, credential: bytes) -> Subscription:
        """A new stream of ``space_id``, or 429 when the credential or the space has as many
        open as allowed. Starts the reader if it is not running."""
        if self._per_credential[credential] >= self.max_per_credential:
            raise _too_many(f"{self.max_per_credential} streams are open with this credential")
        if len(self._subs.get(space_id, ())) >= self.max_per_space:
            raise _too_many(f"{self.max_per_space} streams are open on space {space_id}")
        sub = Subscription(space_id, credential, start=self._marks)
        self._subs.setdefault(space_id, set()).add(sub)
        self._per_credential[credential] += 1
        if self.closing.is_set():
            sub.end(SHUTDOWN)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._run())
        return sub

    def close(self, sub: Subscription) -> None:
        """Forget a stream (when its response ends; more calls do nothing)."""
        subs = self._subs.get(sub.space_id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.space_id]
        self._per_credential[sub.credential] -= 1
        if self._per_credential[sub.credential] <= 0:
            del self._per_credential[sub.credential]

    def open_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def status(self) -> dict[str, Any]:
        """What GET /admin/streams shows."""
        return {
            "open": self.open_count(),
            "spaces": {str(space): len(subs) for space, subs in sorted(self._subs.items())},
            "reader": {"running": self._reader is not None, "reads": self.reads},
        }

    async def follow(self, sub: Subscription, cursor: StreamCursor | None) -> AsyncIterator[bytes]:
        """The stream's bytes: a comment to open it, the backlog after ``cursor`` (None: start
        at "now"), then the reader's rows and heartbeats, and a last ``end`` message."""
        try:
            yield b"retry: 1000\n: connected\n\n"
            start = await self._start_of(sub)
            if start is not None:
                lows, highs = _lows(start), _highs(start)
                if cursor is None:  # "now": the rows read before the stream joined are not its
                    cursor = StreamCursor(lows)
                else:
                    async for chunk in self._backlog(sub, cursor, lows, highs):
                        yield chunk
                if sub.ended is None:  # not after a backlog cut short: it would leave a hole
                    async for chunk in self._live(sub, cursor):
                        yield chunk
            if sub.ended is not None:
                yield sse_end(sub.ended)
        finally:
            self.close(sub)

    async def _start_of(self, sub: Subscription) -> Marks | None:
        """The reader's watermarks when the stream joined (a reader that has just started has
        them after its first poll); None if the stream ended before."""
        while sub.start is None and sub.ended is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self.poll_s)
        return None if sub.ended is not None else sub.start

    async def _backlog(
        self, sub: Subscription, cursor: StreamCursor, lows: Ids, highs: Ids
    ) -> AsyncIterator[bytes]:
        """The space's rows after ``cursor`` up to the reader's ``highs``, in batches. Rows up
        to the reader's ``lows`` are settled; the few above them are remembered by the cursor,
        so the reader's copies of them are not sent again."""
        a, b, c = cursor.lows
        after: Ids = (a, b, c)
        while any(a < h for a, h in zip(after, highs, strict=True)):
            if sub.ended is not None:
                return
            self.reads += 1
            batch = await self.store.tail_range(sub.space_id, after, highs, BATCH)
            for item in batch.items:
                if cursor.delivers(item.table, item.id, lows[item.table]):
                    yield sse_message(sse_data(item), cursor.text())
            after = batch.reached
        cursor.settle(lows)

    async def _live(self, sub: Subscription, cursor: StreamCursor) -> AsyncIterator[bytes]:
        beat = time.monotonic() + self.heartbeat_s
        while True:
            try:
                tick = await asyncio.wait_for(sub.queue.get(), max(0.0, beat - time.monotonic()))
            except asyncio.TimeoutError:
                yield b": keep-alive\n\n"
                beat = time.monotonic() + self.heartbeat_s
                continue
            if isinstance(tick, str):
                return
            sub.pending -= len(tick.items)
            for item, data in zip(tick.items, tick.data, strict=True):
                if cursor.delivers(item.table, item.id, tick.lows[item.table]):
                    yield sse_message(data, cursor.text())
            cursor.settle(tick.lows)

    # ------------------------------------------------------------------ the reader

    async def _run(self) -> None:
        """Poll while any stream is open; hand each stream its space's rows."""
        recheck_at = time.monotonic() + self.recheck_s
        try:
            while self._subs and not self.closing.is_set():
                full = await self._poll()
                if time.monotonic() >= recheck_at:
                    await self._recheck()
                    recheck_at = time.monotonic() + self.recheck_s
                if full:
                    await asyncio.sleep(0)
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), self.poll_s)
        finally:
            # No await between the last look at self._subs and here: a stream opened from now
            # on starts a new reader, which starts at "now".
            self._reader = None
            self._marks = None
            self._ready.clear()

    async def _poll(self) -> bool:
        asked = set(self._subs)
        try:
            poll = await self.store.tail_poll(self._marks, asked, time.monotonic())
        except Exception:  # the next poll tries again; the streams stay open
            log.exception("the live stream's reader could not read the database")
            return False
        self.reads += 1
        self._marks = poll.marks
        for subs in self._subs.values():
            for sub in subs:
                if sub.start is None:  # joined before the reader's first poll
                    sub.start = poll.marks
        self._ready.set()
        for space_id, subs in list(self._subs.items()):
            if space_id not in asked:  # its first stream joined during the poll: the next asks
                continue
            if space_id not in poll.spaces:
                for sub in subs:
                    sub.end(SPACE_DELETED)
                continue
            items = poll.items.get(space_id)
            if items:
                tick = _Tick(items, [sse_data(i) for i in items], poll.lows)
                for sub in subs:
                    sub.push(tick)
        return poll.full

    async def _recheck(self) -> None:
        """End the streams whose credential stopped working (one lookup per credential)."""
        for credential in list(self._per_credential):
            if await self.auth.still_valid(credential):
                continue
            for subs in self._subs.values():
                for sub in subs:
                    if sub.credential == credential:
                        sub.end(CREDENTIAL_EXPIRED)


def _lows(marks: Marks) -> Ids:
    a, b, c = (m.low for m in marks)
    return a, b, c


def _highs(marks: Marks) -> Ids:
    a, b, c = (m.high for m in marks)
    return a, b, c


def _too_many(why: str) -> ApiError:
    return ApiError(
        429,
        "too_many_streams",
        f"{why}; close one (or wait for it to end) and retry",
        headers={"Retry-After": "5"},
    )


class EventStreamResponse(Response):
    """``text/event-stream`` from an async iterator of bytes, that stops as soon as the client
    disconnects (not only at the next write). ``on_close`` runs when the response is over,
    however it ends (also when the body never started)."""

    media_type = "text/event-stream"

    def __init__(self, chunks: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        # no body was given: drop the "content-length: 0" Response added for it
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.chunks = chunks
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._send(receive, send)
        finally:
            self.on_close()

    async def _send(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async with anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            try:
                async for chunk in self.chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except OSError:  # the client is gone
                pass
            group.cancel_scope.cancel()
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
