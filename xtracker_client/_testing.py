"""The test mode: ``XTracker.testing()`` and ``AsyncXTracker.testing()``.

A client that validates every call exactly as the real one does (the same wire models, the
same ``TypeError`` for a Telegram id in the uid position, ``ClientClosedError`` after close)
and records what it would have sent in ``calls``, in order. No spool file, no sender, no
network: ``flush()`` and ``close()`` return at once.

    def test_start_reports_a_contact() -> None:
        tracker = XTracker.testing()
        handle_start(tracker, "/start fb_abc", user_id=42)
        assert [(c.kind, c.event, c.uid) for c in tracker.calls] == [
            ("bind", None, "abc"),
            ("event", "contact", "abc"),
        ]
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from xtracker_client._async_client import AsyncXTracker
from xtracker_client._client import XTracker
from xtracker_client._core import Core, FlushResult, Receipt, Stats, click_body
from xtracker_client._retry import Backoff
from xtracker_client._spool import DeadLetter

__all__ = ["AsyncRecordingXTracker", "RecordedCall", "RecordingXTracker"]

CallKind = Literal["event", "bind", "click"]


@dataclass(frozen=True)
class RecordedCall:
    """One call a test-mode client recorded. ``body`` is what the real client would have sent
    (``POST /events``, ``/bind`` or ``/clicks``): values as decimal text, the currency
    upper-cased, ``occurred_at_ms`` pinned. For a click, ``uid`` is the uid it returned."""

    kind: CallKind
    body: dict[str, Any]
    uid: str | None = None

    @property
    def event(self) -> str | None:
        return self.body.get("event")

    @property
    def tg_id(self) -> int | None:
        return self.body.get("tg_id")

    @property
    def value(self) -> str | None:
        return self.body.get("value")

    @property
    def currency(self) -> str | None:
        return self.body.get("currency")

    @property
    def eid(self) -> str | None:
        return self.body.get("eid")

    @property
    def occurred_at_ms(self) -> int | None:
        return self.body.get("occurred_at_ms")


class _Recorder:
    """What both test-mode clients share: the validating core and the list of calls."""

    def __init__(self) -> None:
        # The real core validates; its spool (SQLite in memory) is never written.
        self.core = Core(
            "http://xtracker.invalid",
            "xt_sk_testing",
            spool=None,
            in_memory=True,
            max_rows=1,
            max_bytes=1024,
            drop_policy="drop_oldest",
            fsync=False,
            timeout=1.0,
            backoff=Backoff(),
            on_error=None,
            on_drop=None,
        )
        self.calls: list[RecordedCall] = []
        self.lock = threading.Lock()

    def record(self, kind: CallKind, body: dict[str, Any]) -> Receipt:
        with self.lock:
            self.calls.append(RecordedCall(kind, body, body.get("uid")))
            item_id = len(self.calls)
        return Receipt(
            item_id,
            kind,
            body.get("event"),
            body.get("uid"),
            body.get("occurred_at_ms"),
            body.get("eid"),
        )

    def click(self, fields: dict[str, str | None]) -> str:
        body = click_body(
            fields["link_slug"], fields["fbclid"], fields["campaign_name"], fields["raw_query"]
        )
        uid = secrets.token_urlsafe(12)
        with self.lock:
            self.calls.append(RecordedCall("click", body, uid))
        return uid

    def stats(self) -> Stats:
        with self.lock:
            sent = sum(1 for c in self.calls if c.kind != "click")
        return Stats(sent=sent)

    def close(self) -> FlushResult:
        self.core.spool.close()
        return FlushResult(True, 0, 0)


class _Recording:
    """What both test-mode clients add to the real one: the recorder in place of the spool,
    the sender and HTTP. Each client's own methods (sync or async) are one line over it."""

    _closed: bool
    _flushed: FlushResult | None

    def __init__(self) -> None:  # not the client's __init__: no spool file, no thread, no HTTP
        self._recorder = _Recorder()
        self._core = self._recorder.core
        self._closed = False
        self._flushed = None

    @property
    def calls(self) -> list[RecordedCall]:
        """What was reported so far, in order (events, binds and clicks)."""
        return self._recorder.calls

    def _check_fork(self) -> None:
        pass

    def _click(self, **fields: str | None) -> str:
        self._check_open()
        return self._recorder.click(fields)

    if TYPE_CHECKING:  # the client's own (XTracker's or AsyncXTracker's), after this class

        def _check_open(self) -> None: ...

    def _close_once(self) -> FlushResult:
        if self._flushed is None:
            self._flushed = self._recorder.close()
            self._closed = True
        return self._flushed


_FLUSHED = FlushResult(True, 0, 0)


class RecordingXTracker(_Recording, XTracker):
    """``XTracker.testing()``: records calls in ``calls`` instead of sending them."""

    def _buffer(self, kind: Any, body: dict[str, Any]) -> Receipt:
        return self._recorder.record(kind, body)

    def new_click(
        self,
        *,
        link_slug: str | None = None,
        fbclid: str | None = None,
        campaign_name: str | None = None,
        raw_query: str | None = None,
        attempts: int = 3,
    ) -> str:
        """A new random uid, the click recorded."""
        return self._click(link_slug=link_slug, fbclid=fbclid, campaign_name=campaign_name,
                           raw_query=raw_query)  # fmt: skip

    def ping(self, timeout: float | None = None) -> None:
        self._check_open()

    def flush(self, timeout: float = 10.0) -> FlushResult:
        return _FLUSHED

    def close(self, timeout: float | None = None) -> FlushResult:
        return self._close_once()

    def stats(self) -> Stats:
        return self._recorder.stats()

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return []

    def requeue_dead(self) -> int:
        return 0

    def __enter__(self) -> RecordingXTracker:
        return self


class AsyncRecordingXTracker(_Recording, AsyncXTracker):
    """``AsyncXTracker.testing()``: records calls in ``calls`` instead of sending them."""

    async def _buffer(self, kind: Any, body: dict[str, Any]) -> Receipt:
        return self._recorder.record(kind, body)

    async def new_click(
        self,
        *,
        link_slug: str | None = None,
        fbclid: str | None = None,
        campaign_name: str | None = None,
        raw_query: str | None = None,
        attempts: int = 3,
    ) -> str:
        """A new random uid, the click recorded."""
        return self._click(link_slug=link_slug, fbclid=fbclid, campaign_name=campaign_name,
                           raw_query=raw_query)  # fmt: skip

    async def ping(self, timeout: float | None = None) -> None:
        self._check_open()

    async def flush(self, timeout: float = 10.0) -> FlushResult:
        return _FLUSHED

    async def close(self, timeout: float | None = None) -> FlushResult:
        return self._close_once()

    async def stats(self) -> Stats:
        return self._recorder.stats()

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return []

    async def requeue_dead(self) -> int:
        return 0

    async def __aenter__(self) -> AsyncRecordingXTracker:
        return self
