"""Testing a bot's reporting with the client's test mode (pytest).

``XTracker.testing()`` (``AsyncXTracker.testing()``) validates every call as the real client
does and records it in ``tracker.calls`` instead of sending it: no server, no spool file, no
wait at close. Run it:

    python -m pytest examples/test_mode.py

The handlers below stand for your bot's; in a real project they live in the bot's package and
only the tests sit in ``tests/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from xtracker_client import (
    AsyncXTracker,
    InvalidEventError,
    RecordingXTracker,
    XTracker,
    parse_start_payload,
)

# --- the bot's code ----------------------------------------------------------------------------


def on_start(tracker: XTracker, text: str, user_id: int) -> str:
    """``/start fb_<uid>``: bind the user to the click and report the contact."""
    uid = parse_start_payload(text)
    if uid is None:
        return "Welcome!"  # an organic start: nothing to report
    tracker.bind(uid, tg_id=user_id)
    tracker.contact(uid, tg_id=user_id, eid=f"start-{user_id}")
    return "Welcome back from the ad!"


def on_deposit(tracker: XTracker, user_id: int, amount: str, tx_id: str) -> None:
    """A deposit the partner confirmed; the user is known by the bind (tg_id only)."""
    tracker.deposit(value=amount, currency="USD", tg_id=user_id, eid=tx_id)


async def on_start_async(tracker: AsyncXTracker, text: str, user_id: int) -> None:
    uid = parse_start_payload(text)
    if uid is not None:
        await tracker.bind(uid, tg_id=user_id)
        await tracker.contact(uid, tg_id=user_id, eid=f"start-{user_id}")


# --- its tests ---------------------------------------------------------------------------------


@pytest.fixture
def tracker() -> Iterator[RecordingXTracker]:
    tracker = XTracker.testing()
    yield tracker
    tracker.close()  # returns at once: nothing to send


def test_start_from_an_ad_binds_and_reports_a_contact(tracker: RecordingXTracker) -> None:
    assert on_start(tracker, "/start fb_Ab3-x_9", user_id=42) == "Welcome back from the ad!"
    assert [(c.kind, c.event, c.uid, c.tg_id) for c in tracker.calls] == [
        ("bind", None, "Ab3-x_9", 42),
        ("event", "contact", "Ab3-x_9", 42),
    ]
    assert tracker.calls[1].eid == "start-42"


def test_an_organic_start_reports_nothing(tracker: RecordingXTracker) -> None:
    on_start(tracker, "/start", user_id=42)
    on_start(tracker, "/start ref_42", user_id=42)  # someone else's payload
    assert tracker.calls == []


def test_a_deposit_is_sent_as_exact_decimal_text(tracker: RecordingXTracker) -> None:
    on_deposit(tracker, user_id=42, amount="25.5", tx_id="tx-1")
    (deposit,) = tracker.calls
    assert (deposit.event, deposit.value, deposit.currency, deposit.eid) == (
        "deposit",
        "25.5",
        "USD",
        "tx-1",
    )


def test_a_bad_amount_fails_in_the_test_as_it_would_in_production(
    tracker: RecordingXTracker,
) -> None:
    with pytest.raises(InvalidEventError, match="greater than zero"):
        on_deposit(tracker, user_id=42, amount="-5", tx_id="tx-2")


def test_the_async_handler() -> None:
    async def run() -> list[tuple[str, str | None]]:
        async with AsyncXTracker.testing() as tracker:
            await on_start_async(tracker, "/start fb_Ab3", user_id=7)
            return [(c.kind, c.event) for c in tracker.calls]

    assert asyncio.run(run()) == [("bind", None), ("event", "contact")]
