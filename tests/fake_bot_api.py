"""A fake Telegram Bot API server on loopback, for the bot examples: a real HTTP server, in its
own thread, that answers the methods the examples call the way Telegram answers them, serves
the updates a test pushes through long polling (``getUpdates``), and records every call.

A bot reaches it as it reaches Telegram, over HTTP (aiogram: ``TelegramAPIServer.from_base(url)``,
python-telegram-bot: ``base_url=f"{url}/bot"``), so the bot's own HTTP layer, its polling loop
and its shutdown run as in production. A method it does not know is answered 404 as Telegram
does and kept in ``unexpected``, which a test checks is empty.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TOKEN = "4242:TEST-token-not-real"
BOT_ID = 4242
#: The longest a getUpdates call is held here, whatever timeout the bot asked for: a bot that
#: is told to stop mid-poll (python-telegram-bot waits for its poll to end) stops within this.
MAX_POLL_S = 1.0
JSON_WORDS = ("true", "false")


@dataclass
class Call:
    method: str
    params: dict[str, Any]  # the values as sent; JSON-encoded ones (reply_markup ...) decoded


def bot_user() -> dict[str, Any]:
    return {"id": BOT_ID, "is_bot": True, "first_name": "Offer", "username": "my_offer_bot"}


def parse_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    """The parameters of a Bot API call, sent as a query, a form, multipart or JSON."""
    params: dict[str, Any] = dict(parse_qsl(query))
    if content_type.startswith("application/json") and body:
        params.update(json.loads(body))
    elif content_type.startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl(body.decode()))
    elif content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                params[name] = payload.decode()
    for key, value in params.items():  # arrays, objects and booleans are sent as JSON text
        if isinstance(value, str) and (value.startswith(("[", "{")) or value in JSON_WORDS):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
    return params


class FakeBotAPI:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.unexpected: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._closing = False
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": lambda p: bot_user(),
            "deleteWebhook": lambda p: True,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "approveChatJoinRequest": lambda p: True,
            "createChatInviteLink": self._create_invite_link,
        }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer = fake._answer(
                    self.path, self.headers.get("content-type") or "", body
                )
                data = json.dumps(answer).encode()
                # A bot that stops (or is killed) mid-poll has hung up: nothing to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
        """The base URL a bot is given in place of ``https://api.telegram.org``."""
        return f"http://127.0.0.1:{self.port}"

    # --- what a test does ------------------------------------------------------------------

    def push(self, update: dict[str, Any]) -> None:
        """Queue an update for the bot's next getUpdates."""
        with self._cond:
            self._updates.append(update)
            self._cond.notify_all()

    def sent(self, method: str) -> list[dict[str, Any]]:
        with self._cond:
            return [c.params for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Block until the bot made ``count`` calls of ``method`` (a condition, not a sleep);
        the calls so far, which a test checks (this does not raise on the timeout)."""
        with self._cond:
            self._cond.wait_for(
                lambda: sum(c.method == method for c in self.calls) >= count, timeout
            )
            return [c.params for c in self.calls if c.method == method]

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # --- the Bot API -----------------------------------------------------------------------

    def _answer(self, target: str, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(target)
        prefix, _, method = parts.path.rpartition("/")
        call = Call(method, parse_params(content_type, body, parts.query))
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
        if prefix != f"/bot{self.token}":
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        handler = self._methods.get(method)
        if handler is None:
            with self._cond:
                self.unexpected.append(call)
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return 200, {"ok": True, "result": handler(call.params)}

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        wait_s = min(float(params.get("timeout") or 0), MAX_POLL_S)
        deadline = time.monotonic() + wait_s
        with self._cond:
            # Telegram forgets the updates below the offset: the bot confirmed them.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self._updates)

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        return {
            "message_id": len(self.calls),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "channel"},
            "from": bot_user(),
            "text": params["text"],
        }

    def _create_invite_link(self, params: dict[str, Any]) -> dict[str, Any]:
        link: dict[str, Any] = {
            "invite_link": "https://t.me/+FreshLink0123",
            "creator": bot_user(),
            "creates_join_request": params.get("creates_join_request") is True,
            "is_primary": False,
            "is_revoked": False,
        }
        if params.get("name"):
            link["name"] = params["name"]
        return link
