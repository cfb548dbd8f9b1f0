"""A real local HTTP sink for destination tests: records every request it receives and answers
from a script (a list of statuses, then a default), in its own thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Received:
    method: str
    target: str  # the request target exactly as sent: path and query, byte for byte
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    responder_status: int = 0  # what the sink answered

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class _Server(ThreadingHTTPServer):
    #: listen()'s backlog: the default 5 made a worker's 16 simultaneous connections wait for
    #: the kernel's retry, a second later.
    request_queue_size = 128


class Sink:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[Reply] = []
        self.default = Reply()
        self.responder: Callable[[Received], Reply] | None = None
        self._cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Received(
                    self.command,
                    self.path,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                reply = sink._reply_for(req)
                req.responder_status = reply.status
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                # Recorded before the answer is written: a caller that has the answer (a
                # synchronous "destination test") must find the request here already.
                with sink._cond:
                    sink.received.append(req)
                    sink._cond.notify_all()
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # shutdown() waits for the loop to look at its flag: every poll_interval (0.5 s by
        # default, half a second of every test that closes one).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _reply_for(self, req: Received) -> Reply:
        if self.responder is not None:
            return self.responder(req)
        with self._cond:
            return self.script.pop(0) if self.script else self.default

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Block until at least ``count`` requests arrived (an event, not a sleep)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
