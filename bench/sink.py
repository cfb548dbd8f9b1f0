"""A fast local HTTP sink for ``bench/delivery.py``: answers every request ``200 {"ok":true}``
and counts what it got, per path.

A bare asyncio protocol (uvloop when installed) with HTTP/1.1 keep-alive and ``Content-Length``
bodies, nothing else: it must cost far less per request than any Python HTTP *client*, so that
the clients (XTRACKER's delivery worker, plain httpx) are what is measured, not the sink.

It counts the connections opened, and per path it keeps the number of requests, the distinct
``webhook-id`` headers, the bytes of the bodies, and the first request's headers and body (a
sample for the baseline to replay).
Control endpoints (not counted): ``GET /_stats`` answers those as JSON, ``POST /_reset`` clears
them.

Run: ``python bench/sink.py --port 8002`` (listens on 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
from dataclasses import dataclass, field
from typing import Any, cast

HOST = "127.0.0.1"
_OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_MAX_HEAD = 64 * 1024


@dataclass
class PathStats:
    requests: int = 0
    body_bytes: int = 0
    ids: set[str] = field(default_factory=set)
    sample_headers: dict[str, str] | None = None
    sample_body: bytes | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "distinct_ids": len(self.ids),
            "body_bytes": self.body_bytes,
            "sample_headers": self.sample_headers,
            "sample_body_b64": None
            if self.sample_body is None
            else base64.b64encode(self.sample_body).decode(),
        }


STATS: dict[str, PathStats] = {}
CONNECTIONS = [0]  # connections opened since the last reset


def _response(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


class SinkProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        CONNECTIONS[0] += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self._fail()
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            headers: dict[str, str] = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self._fail()
                return
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._fail()  # not needed by our clients
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            self._handle(head[0], headers, body)

    def _handle(self, request_line: str, headers: dict[str, str], body: bytes) -> None:
        assert self.transport is not None
        target = request_line.split(" ", 2)[1] if request_line.count(" ") >= 2 else "/"
        path = target.partition("?")[0]
        if path == "/_stats":
            answer = {
                "connections": CONNECTIONS[0],
                "paths": {name: s.as_json() for name, s in STATS.items()},
            }
            self.transport.write(_response("200 OK", json.dumps(answer).encode()))
        elif path == "/_reset":
            STATS.clear()
            CONNECTIONS[0] = 0
            self.transport.write(_OK)
        else:
            stats = STATS.get(path)
            if stats is None:
                stats = STATS[path] = PathStats()
            stats.requests += 1
            stats.body_bytes += len(body)
            msg_id = headers.get("webhook-id")
            if msg_id is not None:
                stats.ids.add(msg_id)
            if stats.sample_body is None:
                stats.sample_headers, stats.sample_body = headers, body
            self.transport.write(_OK)
        if headers.get("connection", "").lower() == "close":
            self.transport.close()

    def _fail(self) -> None:
        assert self.transport is not None
        self.transport.write(_BAD)
        self.transport.close()
        self.buffer = b""


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, HOST, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (`&`)
        loop.add_signal_handler(sig, stop.set)
    print(f"sink listening on http://{HOST}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    run(serve(args.port))


if __name__ == "__main__":
    main()
