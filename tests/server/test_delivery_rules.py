"""The pure rules of the outbox: what a delivery becomes after an attempt (``next_state``) and
how a claim is split between the newest deliveries and the backlog (``claim_plan``)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from xtracker_server.domain.drain import FRESH_WINDOW_S, claim_plan
from xtracker_server.domain.outbound import Outcome, Verdict
from xtracker_server.domain.retry import (
    HOLD_S,
    DeliveryStatus,
    NextState,
    RetryPolicy,
    next_state,
)

NOW = 1_700_000_000_000
POLICY = RetryPolicy(base_s=30, cap_s=3600, max_age_s=86400)


@dataclass(frozen=True)
class Claimed:
    attempts: int
    age_from_ms: int = NOW - 60_000


def test_a_delivered_event_is_sent_with_no_error() -> None:
    state = next_state(Claimed(1), Verdict(Outcome.SENT, "HTTP 200"), POLICY, NOW)
    assert state == NextState(DeliveryStatus.SENT, None, None)


def test_a_permanent_failure_fails_at_once_with_its_reason() -> None:
    state = next_state(Claimed(1), Verdict(Outcome.FAIL, "HTTP 400"), POLICY, NOW)
    assert state == NextState(DeliveryStatus.FAILED, None, "HTTP 400")


def test_a_transient_failure_is_retried_after_the_policys_delay() -> None:
    state = next_state(
        Claimed(3), Verdict(Outcome.RETRY, "HTTP 503"), POLICY, NOW, rng=random.Random(7)
    )
    expected_delay = POLICY.delay_s(3, rng=random.Random(7))
    assert state == NextState(DeliveryStatus.RETRYING, NOW + int(expected_delay * 1000), "HTTP 503")
    assert 0.8 * 120 <= expected_delay <= 1.2 * 120  # the third attempt waits about 2 minutes


def test_a_retry_after_longer_than_the_backoff_is_honoured() -> None:
    verdict = Verdict(Outcome.RETRY, "HTTP 429", retry_after_s=900)
    state = next_state(Claimed(1), verdict, POLICY, NOW)
    assert state.status is DeliveryStatus.RETRYING
    assert state.next_attempt_ms == NOW + 900_000


def test_a_retry_that_would_fall_past_the_max_age_gives_up() -> None:
    old = Claimed(attempts=9, age_from_ms=NOW - 86_000_000)  # 400 s left in its window
    state = next_state(old, Verdict(Outcome.RETRY, "HTTP 503"), POLICY, NOW)
    assert state.status is DeliveryStatus.FAILED
    assert state.error == "gave up after 9 attempts; last: HTTP 503"
    assert not state.refund_attempt


def test_a_replay_resets_the_window_the_give_up_counts_from() -> None:
    replayed = Claimed(attempts=9, age_from_ms=NOW - 1_000)
    state = next_state(replayed, Verdict(Outcome.RETRY, "HTTP 503"), POLICY, NOW)
    assert state.status is DeliveryStatus.RETRYING


def test_a_broken_destination_holds_the_delivery_without_counting_the_attempt() -> None:
    verdict = Verdict(Outcome.HOLD, "token expired", unhealthy="code 190")
    first = next_state(Claimed(1), verdict, POLICY, NOW)
    assert first == NextState(
        DeliveryStatus.PENDING, NOW + int(HOLD_S * 1000), "token expired", refund_attempt=True
    )
    # one that had failed before stays retrying: its earlier attempts were real
    later = next_state(Claimed(4), verdict, POLICY, NOW)
    assert later.status is DeliveryStatus.RETRYING
    assert later.refund_attempt


def test_the_statuses_are_the_outboxs() -> None:
    from xtracker_server.store.sqlite.outbox import STATUSES

    assert STATUSES == ("pending", "retrying", "sent", "failed_permanently")
    assert {s.value for s in DeliveryStatus} == set(STATUSES)


def test_half_of_a_claim_is_for_the_newest_lane() -> None:
    plan = claim_plan(32, NOW)
    assert (plan.limit, plan.fresh_limit) == (32, 16)
    assert plan.fresh_since_ms == NOW - int(FRESH_WINDOW_S * 1000)


def test_a_claim_of_one_row_goes_to_the_backlog() -> None:
    plan = claim_plan(1, NOW)
    assert (plan.limit, plan.fresh_limit) == (1, 0)
    assert claim_plan(7, NOW).fresh_limit == 3
