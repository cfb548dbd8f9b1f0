"""The live stream: Server-Sent Events with each click, event and delivery attempt of a space,
as it is committed.

It tails the database rather than hooking the write path: every ``poll_s`` it reads the rows
committed since its cursor (``store.reports.tail``: row ids, scoped by space, bounded work per
poll). So it shows what any process wrote to the file: this server, an ``xtracker worker``, the
CLI. Each message's SSE ``id`` is the cursor after it; a client that reconnects with
``Last-Event-ID`` (or ``?since=``) resumes exactly there.

A stream ends when the client goes away, and when the server is asked to stop: uvicorn waits
for open responses before it shuts down, so on SIGINT/SIGTERM every stream is told to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from xtracker_server.store.reports import Cursor, TailItem, tail
from xtracker_server.store.runtime import Store

#: Items read per table in one poll; a fuller backlog is read by the next polls at once.
BATCH = 500


def sse_message(item: TailItem) -> bytes:
    data = json.dumps({"type": item.kind, **item.data}, separators=(",", ":"))
    return f"id: {item.cursor.text()}\nevent: {item.kind}\ndata: {data}\n\n".encode()


class LiveStreams:
    """What the open streams share: how often they poll, and the signal to finish."""

    def __init__(self, *, poll_s: float = 0.2, heartbeat_s: float = 15.0) -> None:
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}

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
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)

    def stop(self) -> None:
        """Finish the streams and give the signal handlers back."""
        if self._closing is not None:
            self._closing.set()
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError):  # not the main thread any more
                signal.signal(sig, previous)
        self._previous.clear()

    async def follow(self, store: Store, space_id: int, cursor: Cursor) -> AsyncIterator[bytes]:
        """The stream's bytes: a comment to open it, then messages and heartbeats."""
        closing = self.closing
        yield b"retry: 1000\n: connected\n\n"
        beat = time.monotonic()
        while not closing.is_set():
            batch = await store.read(tail, space_id, cursor, BATCH)
            cursor = batch.cursor
            for item in batch.items:
                yield sse_message(item)
            if len(batch.items) >= BATCH:
                continue  # a backlog: read on without waiting
            if time.monotonic() - beat >= self.heartbeat_s:
                yield b": keep-alive\n\n"
                beat = time.monotonic()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(closing.wait(), self.poll_s)


class EventStreamResponse(Response):
    """``text/event-stream`` from an async iterator of bytes, that stops as soon as the client
    disconnects (not only at the next write)."""

    media_type = "text/event-stream"

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        super().__init__(
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        # no body was given: drop the "content-length: 0" Response added for it
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
