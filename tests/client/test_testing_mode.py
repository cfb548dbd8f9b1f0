"""The test mode (``XTracker.testing()``, ``AsyncXTracker.testing()``): the real validation,
calls recorded in memory, nothing stored or sent, and a close that does not wait."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from xtracker_client import (
    AsyncRecordingXTracker,
    AsyncXTracker,
    ClientClosedError,
    InvalidEventError,
    RecordingXTracker,
    XTracker,
)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a default spool file would go: it must stay empty."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_calls_are_recorded_as_the_real_client_would_send_them(cache_dir: Path) -> None:
    threads = threading.active_count()
    tracker = XTracker.testing()
    assert isinstance(tracker, RecordingXTracker) and isinstance(tracker, XTracker)
    bound = tracker.bind("abc", tg_id=42)
    tracker.contact("abc", tg_id=42, eid="start-42")
    tracker.deposit("abc", Decimal("25.50"), "usd", eid="tx-1")
    uid = tracker.new_click(campaign_name="spring")
    assert threading.active_count() == threads  # no sender thread
    assert [(c.kind, c.event, c.uid) for c in tracker.calls] == [
        ("bind", None, "abc"),
        ("event", "contact", "abc"),
        ("event", "deposit", "abc"),
        ("click", None, uid),
    ]
    deposit = tracker.calls[2]
    assert deposit.value == "25.50" and deposit.currency == "USD" and deposit.eid == "tx-1"
    assert deposit.occurred_at_ms is not None and tracker.calls[1].tg_id == 42
    assert tracker.calls[3].body == {"campaign_name": "spring"}
    assert bound.id == 1 and bound.kind == "bind"
    assert tracker.stats().sent == 3 and tracker.stats().queued == 0
    started = time.monotonic()
    assert tracker.flush() and tracker.close()
    assert time.monotonic() - started < 0.5  # nothing to wait for
    assert list(cache_dir.iterdir()) == []  # no spool file


def test_the_test_mode_refuses_what_the_real_client_refuses() -> None:
    tracker = XTracker.testing()
    with pytest.raises(InvalidEventError, match="greater than zero"):
        tracker.deposit("abc", "-5")
    with pytest.raises(InvalidEventError, match="unknown event"):
        tracker.track("purchase", "abc")
    with pytest.raises(TypeError, match="uid must be a str"):
        tracker.contact(555000111)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="positional"):
        tracker.bind("abc", 42)  # type: ignore[call-arg]
    with pytest.raises(InvalidEventError, match="link_slug"):
        tracker.new_click(link_slug="x" * 1000)
    assert tracker.calls == []
    tracker.close()
    with pytest.raises(ClientClosedError):
        tracker.contact("abc")


def test_the_async_test_mode_records_too(cache_dir: Path) -> None:
    async def run() -> AsyncRecordingXTracker:
        async with AsyncXTracker.testing() as tracker:
            await tracker.bind("abc", tg_id=42)
            await tracker.subscribed("abc", tg_id=42)
            with pytest.raises(TypeError, match="uid must be a str"):
                await tracker.registration(42, eid="r1")  # type: ignore[arg-type]
            await tracker.ping()
            assert await tracker.flush()
            assert (await tracker.stats()).sent == 2
        with pytest.raises(ClientClosedError):
            await tracker.contact("abc")
        return tracker

    tracker = asyncio.run(run())
    assert [(c.kind, c.event) for c in tracker.calls] == [("bind", None), ("event", "subscribed")]
    assert list(cache_dir.iterdir()) == []


def test_an_async_test_mode_client_may_be_made_outside_a_loop() -> None:
    tracker = AsyncXTracker.testing()  # as a module-level fixture would
    asyncio.run(tracker.contact("abc"))
    asyncio.run(tracker.close())
    assert [c.event for c in tracker.calls] == ["contact"]
