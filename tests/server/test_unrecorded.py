"""domain/unrecorded.py: the per-address click limit and the tally of unrecorded visits."""

from __future__ import annotations

from xtracker_server.domain.unrecorded import (
    HOUR_MS,
    ClickLimiter,
    Reason,
    Tally,
    UnrecordedCount,
    address_key,
    hour_start,
)


def test_an_address_records_its_whole_allowance_at_once_then_no_more() -> None:
    limiter = ClickLimiter(5)
    assert [limiter.allow("203.0.113.7", 100.0) for _ in range(8)] == [True] * 5 + [False] * 3


def test_the_allowance_refills_over_the_minute() -> None:
    limiter = ClickLimiter(60)  # one a second
    for _ in range(60):
        assert limiter.allow("203.0.113.7", 100.0)
    assert not limiter.allow("203.0.113.7", 100.5)
    assert limiter.allow("203.0.113.7", 101.6)
    assert not limiter.allow("203.0.113.7", 101.7)
    assert sum(limiter.allow("203.0.113.7", 1000.0) for _ in range(100)) == 60  # full, no more


def test_another_address_is_not_affected() -> None:
    limiter = ClickLimiter(2)
    assert limiter.allow("203.0.113.7", 0) and limiter.allow("203.0.113.7", 0)
    assert not limiter.allow("203.0.113.7", 0)
    assert limiter.allow("198.51.100.1", 0)


def test_an_ipv6_64_is_one_address() -> None:
    limiter = ClickLimiter(1)
    assert limiter.allow("2001:db8:1:2::1", 0)
    assert not limiter.allow("2001:db8:1:2:ffff::9", 0)  # same /64
    assert limiter.allow("2001:db8:1:3::1", 0)  # the next /64
    assert address_key("2001:db8:1:2::1") == address_key("2001:0db8:0001:0002:aaaa::1")


def test_a_visit_without_an_address_is_not_limited() -> None:
    limiter = ClickLimiter(1)
    assert all(limiter.allow(None, 0) for _ in range(10))
    assert address_key(None) is None


def test_a_clock_going_back_takes_nothing_away() -> None:
    limiter = ClickLimiter(60)
    assert limiter.allow("203.0.113.7", 100.0)
    assert sum(limiter.allow("203.0.113.7", 50.0) for _ in range(100)) == 59


def test_memory_is_bounded_even_when_no_address_is_idle() -> None:
    limiter = ClickLimiter(2, max_addresses=100)
    for i in range(1000):
        limiter.allow(f"10.1.{i // 250}.{i % 250}", 0.0)
    assert len(limiter) <= 100


def test_a_busy_address_is_remembered_when_idle_ones_make_room() -> None:
    limiter = ClickLimiter(2, max_addresses=10)
    for i in range(9):
        limiter.allow(f"10.0.0.{i}", 0.0)
    limiter.allow("203.0.113.7", 100.0)
    limiter.allow("203.0.113.7", 100.0)
    limiter.allow("198.51.100.1", 100.0)  # room is made: the nine idle ones go
    assert not limiter.allow("203.0.113.7", 100.0)  # still out of clicks


def test_the_tally_counts_per_link_hour_and_reason_and_starts_again_when_taken() -> None:
    tally = Tally()
    at = 5 * HOUR_MS + 123
    for _ in range(3):
        tally.add(1, 10, Reason.BOT, at)
    tally.add(1, 10, Reason.LIMITED, at)
    tally.add(1, 10, Reason.BOT, at + HOUR_MS)
    tally.add(2, 20, Reason.BOT, at)
    taken = sorted(tally.take(), key=lambda c: (c.space_id, c.hour_ms, c.reason.value))
    assert taken == [
        UnrecordedCount(1, 10, 5 * HOUR_MS, Reason.BOT, 3),
        UnrecordedCount(1, 10, 5 * HOUR_MS, Reason.LIMITED, 1),
        UnrecordedCount(1, 10, 6 * HOUR_MS, Reason.BOT, 1),
        UnrecordedCount(2, 20, 5 * HOUR_MS, Reason.BOT, 1),
    ]
    assert tally.take() == []


def test_counts_put_back_are_added_to_the_next_ones() -> None:
    tally = Tally()
    tally.add(1, 10, Reason.BOT, 0)
    tally.put_back([UnrecordedCount(1, 10, 0, Reason.BOT, 4)])
    assert tally.take() == [UnrecordedCount(1, 10, 0, Reason.BOT, 5)]


def test_hour_start() -> None:
    assert hour_start(HOUR_MS * 7 + 59 * 60_000) == HOUR_MS * 7
    assert hour_start(HOUR_MS * 7) == HOUR_MS * 7
