"""The Store contract, the outbox: an event fans out to its space's enabled destinations, a
worker leases deliveries (no two hold one at once), settles them only while it holds the lease,
and the operator lists, counts and replays them."""

from __future__ import annotations

from tests.store_contract.conftest import T0, Backend, event
from tests.store_contract.test_admin import webhook
from xtracker_server.domain.entities import Claimed, Destination, Settled, Unhealthy

LEASE_MS = 60_000


def _destination(backend: Backend, space: int) -> Destination:
    dest = backend.run(backend.store.create_destination(space, webhook(), T0))
    assert dest is not None
    return dest


def _sent(claimed: Claimed, status: str = "sent", **fields: object) -> Settled:
    values: dict[str, object] = {
        "next_attempt_ms": None, "last_status": 200, "last_error": None,
        "refund_attempt": False, "outcome": "sent", "latency_ms": 12, "excerpt": None,
    }  # fmt: skip
    values.update(fields)
    return Settled(claimed.id, claimed.space_id, status, **values)  # type: ignore[arg-type]


def test_an_event_fans_out_to_each_enabled_destination_of_its_space(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    on, off = _destination(backend, a), _destination(backend, a)
    backend.run(store.update_destination(a, off.id, T0, enabled=False))
    _destination(backend, b)
    outcome = backend.run(store.record_event(event(a, "contact", "u1")))
    assert outcome.deliveries == 1
    rows = backend.run(store.list_deliveries(a))
    assert [(r.destination_id, r.inbox_id, r.status) for r in rows] == [
        (on.id, outcome.inbox_id, "pending")
    ]
    assert backend.run(store.list_deliveries(b)) == []
    assert backend.run(store.delivery_counts(a)) == {"pending": 1}
    again = backend.run(store.record_event(event(a, "contact", "u1")))
    assert again.duplicate and again.deliveries == 0


def test_a_lease_is_held_by_one_worker_until_it_runs_out(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    dest = _destination(backend, space)
    for n in range(3):
        backend.run(store.record_event(event(space, "contact", f"u{n}")))
    now = T0 + 1000
    assert (dest.id, dest.kind) in backend.run(store.due_destinations(now))
    first = backend.run(store.claim(dest.id, "worker-a", now, LEASE_MS, 2))
    second = backend.run(store.claim(dest.id, "worker-b", now, LEASE_MS, 10))
    assert len(first) == 2 and len(second) == 1
    assert {c.id for c in first}.isdisjoint(c.id for c in second)
    assert all(c.attempts == 1 and c.space_id == space for c in first + second)
    assert backend.run(store.claim(dest.id, "worker-c", now, LEASE_MS, 10)) == []
    later = now + LEASE_MS
    taken_over = backend.run(store.claim(dest.id, "worker-c", later, LEASE_MS, 10))
    assert len(taken_over) == 3 and all(c.attempts == 2 for c in taken_over)


def test_what_a_worker_gives_back_is_due_at_once_and_its_claim_not_counted(
    backend: Backend,
) -> None:
    space, other = backend.space().space.id, backend.space().space.id
    store = backend.store
    dest = _destination(backend, space)
    for n in range(4):
        backend.run(store.record_event(event(space, "contact", f"u{n}")))
    now = T0 + 1000
    held = backend.run(store.claim(dest.id, "worker-a", now, LEASE_MS, 3))
    sent, *unsent = held
    backend.run(store.settle_deliveries("worker-a", [_sent(sent)], now))
    ids = [c.id for c in held]
    # another owner, another space, a settled row: nothing given back
    assert backend.run(store.give_back(space, ids, "worker-b")) == 0
    assert backend.run(store.give_back(other, ids, "worker-a")) == 0
    assert backend.run(store.give_back(space, ids, "worker-a")) == 2
    assert backend.run(store.give_back(space, ids, "worker-a")) == 0  # once
    again = backend.run(store.claim(dest.id, "worker-c", now, LEASE_MS, 10))
    assert sorted(c.id for c in again) == sorted(
        [
            *(c.id for c in unsent),
            *(r.id for r in backend.run(store.list_deliveries(space)) if r.id not in ids),
        ]
    )
    assert all(c.attempts == 1 for c in again)  # the given-back claim was not counted
    assert backend.run(store.delivery_counts(space)) == {"sent": 1, "pending": 3}


def test_settling_writes_the_outcome_only_while_the_lease_is_held(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    dest = _destination(backend, space)
    backend.run(store.record_event(event(space, "contact", "u1")))
    backend.run(store.record_event(event(space, "contact", "u2")))
    now = T0 + 1000
    claimed = backend.run(store.claim(dest.id, "worker-a", now, LEASE_MS, 10))
    stale = backend.run(store.settle_deliveries("worker-b", [_sent(c) for c in claimed], now))
    assert stale == 0 and backend.run(store.delivery_counts(space)) == {"pending": 2}
    done, retry = claimed
    settled = backend.run(store.settle_deliveries(
        "worker-a",
        [_sent(done), _sent(retry, "retrying", next_attempt_ms=now + 30_000, last_status=503,
                            last_error="HTTP 503", outcome="retry")],
        now,
    ))  # fmt: skip
    assert settled == 2
    assert backend.run(store.delivery_counts(space)) == {"sent": 1, "retrying": 1}
    rows = {r.id: r for r in backend.run(store.list_deliveries(space))}
    assert (rows[done.id].sent_ms, rows[retry.id].next_attempt_ms) == (now, now + 30_000)
    assert rows[retry.id].last_error == "HTTP 503"
    assert backend.run(store.claim(dest.id, "worker-a", now + 1, LEASE_MS, 10)) == []
    assert len(backend.run(store.claim(dest.id, "worker-a", now + 30_000, LEASE_MS, 10))) == 1


def test_an_unhealthy_destination_is_flagged_with_its_outcomes(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    dest = _destination(backend, space)
    backend.run(store.record_event(event(space, "contact", "u1")))
    now = T0 + 1000
    (claimed,) = backend.run(store.claim(dest.id, "w", now, LEASE_MS, 10))
    held = _sent(claimed, "pending", next_attempt_ms=now + 60_000, refund_attempt=True,
                 last_status=401, outcome="hold")  # fmt: skip
    reason = "the access token expired"
    backend.run(store.settle_deliveries("w", [held], now, [Unhealthy(space, dest.id, reason)]))
    found = backend.run(store.get_destination(space, dest.id))
    assert found is not None and found.health_reason == reason
    assert (dest.id, dest.kind) not in backend.run(store.due_destinations(now + 60_000))
    (row,) = backend.run(store.list_deliveries(space))
    assert (row.status, row.attempts) == ("pending", 0)  # the attempt was refunded


def test_an_answer_to_a_destination_changed_since_does_not_flag_or_hold_it(
    backend: Backend,
) -> None:
    """A request made with the old token comes back "token expired" after the operator set a
    new one: the destination is not flagged, and what the answer held is due at once."""
    space = backend.space().space.id
    store = backend.store
    dest = _destination(backend, space)
    backend.run(store.record_event(event(space, "contact", "u1")))
    now = T0 + 1000
    (claimed,) = backend.run(store.claim(dest.id, "w", now, LEASE_MS, 10))
    fixed = backend.run(store.update_destination(space, dest.id, now + 5, secret="new-secret"))
    assert fixed is not None and fixed.updated_ms > dest.updated_ms
    held = _sent(claimed, "pending", next_attempt_ms=now + 60_000, refund_attempt=True,
                 last_status=401, outcome="hold")  # fmt: skip
    late = Unhealthy(space, dest.id, "the access token expired", as_of_ms=dest.updated_ms)
    backend.run(store.settle_deliveries("w", [held], now + 10, [late]))
    found = backend.run(store.get_destination(space, dest.id))
    assert found is not None and found.health_reason is None
    assert (dest.id, dest.kind) in backend.run(store.due_destinations(now + 10))
    (row,) = backend.run(store.list_deliveries(space))
    assert (row.status, row.attempts, row.next_attempt_ms) == ("pending", 0, now + 10)
    # the same answer about the settings it was made with flags the destination
    (again,) = backend.run(store.claim(dest.id, "w", now + 10, LEASE_MS, 10))
    held = _sent(again, "pending", next_attempt_ms=now + 60_000, refund_attempt=True,
                 last_status=401, outcome="hold")  # fmt: skip
    current = Unhealthy(space, dest.id, "the access token expired", as_of_ms=fixed.updated_ms)
    backend.run(store.settle_deliveries("w", [held], now + 20, [current]))
    found = backend.run(store.get_destination(space, dest.id))
    assert found is not None and found.health_reason == "the access token expired"


def test_contexts_are_read_within_the_claims_space(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    dest = _destination(backend, a)
    link = backend.link(a)
    backend.click(a, "u1", link.id)
    backend.run(store.bind(a, "u1", 4242, T0))
    outcome = backend.run(store.record_event(event(a, "deposit", "u1", value="10.50",
                                                   currency="EUR")))  # fmt: skip
    claimed = backend.run(store.claim(dest.id, "w", T0 + 1000, LEASE_MS, 10))
    contexts = backend.run(store.delivery_contexts(a, claimed, "https://t.example"))
    ctx = contexts[claimed[0].id]
    assert (ctx.canonical, ctx.uid, ctx.tg_id, ctx.value, ctx.currency) == (
        "deposit", "u1", 4242, "10.50", "EUR"
    )  # fmt: skip
    assert ctx.click.link == link.slug and ctx.event_id == claimed[0].event_id
    assert claimed[0].inbox_id == outcome.inbox_id
    assert backend.run(store.delivery_contexts(b, claimed, "https://t.example")) == {}


def test_replay_makes_settled_deliveries_due_again_in_its_space_only(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    for space in (a, b):
        dest = _destination(backend, space)
        backend.run(store.record_event(event(space, "contact", "u1")))
        (claimed,) = backend.run(store.claim(dest.id, "w", T0 + 1000, LEASE_MS, 10))
        failed = _sent(claimed, "failed_permanently", last_status=400, outcome="fail")
        backend.run(store.settle_deliveries("w", [failed], T0 + 1000))
    assert backend.run(store.list_deliveries(a, status="failed_permanently"))
    assert backend.run(store.replay(a, now_ms=T0 + 2000)) == 1
    assert backend.run(store.delivery_counts(a)) == {"pending": 1}
    assert backend.run(store.delivery_counts(b)) == {"failed_permanently": 1}
    assert backend.run(store.replay(a, status="sent", now_ms=T0 + 2000)) == 0


def test_the_operators_counts_span_spaces(backend: Backend) -> None:
    store = backend.store
    before = backend.run(store.outbox_depth())
    space = backend.space().space.id
    dest = _destination(backend, space)
    backend.run(store.record_event(event(space, "contact", "u1")))
    assert backend.run(store.outbox_depth())["pending"] == before["pending"] + 1
    backend.run(store.claim(dest.id, "w", T0 + 1000, LEASE_MS, 10))
    assert backend.run(store.release_leases()) >= 1
    assert len(backend.run(store.claim(dest.id, "w2", T0 + 1000, LEASE_MS, 10))) == 1


def test_hastening_makes_only_an_outages_retries_due_in_creation_order(backend: Backend) -> None:
    space, other = backend.space().space.id, backend.space().space.id
    store = backend.store
    dest, elsewhere = _destination(backend, space), _destination(backend, other)
    for n in range(5):
        backend.run(store.record_event(event(space, "contact", f"u{n}")))
    backend.run(store.record_event(event(other, "contact", "u0")))
    now = T0 + 1000
    c = backend.run(store.claim(dest.id, "w", now, LEASE_MS, 10))
    (c_other,) = backend.run(store.claim(elsewhere.id, "w", now, LEASE_MS, 10))
    later = now + 3_600_000

    def retry(claimed: Claimed, status: int | None) -> Settled:
        return _sent(claimed, "retrying", next_attempt_ms=later, last_status=status,
                     last_error="down", outcome="retry")  # fmt: skip

    backend.run(store.settle_deliveries("w", [
        retry(c[0], None), retry(c[1], 503), retry(c[2], 429), _sent(c[3]),
    ], now))  # fmt: skip
    backend.run(store.settle_deliveries("w", [retry(c_other, 503)], now))
    # c[4] stays leased: a worker holds it.
    assert backend.run(store.hasten_retries(dest.id, now, 1)) == 1
    assert backend.run(store.hasten_retries(dest.id, now, 10)) == 1
    assert backend.run(store.hasten_retries(dest.id, now, 10)) == 0
    rows = {r.id: r for r in backend.run(store.list_deliveries(space))}
    created = {r.id: r.created_ms for r in rows.values()}
    assert rows[c[0].id].next_attempt_ms == created[c[0].id]  # no answer: hastened
    assert rows[c[1].id].next_attempt_ms == created[c[1].id]  # a 5xx: hastened
    assert rows[c[2].id].next_attempt_ms == later  # a 429 asked for time: it keeps it
    (row_other,) = backend.run(store.list_deliveries(other))
    assert row_other.next_attempt_ms == later  # another destination: untouched
    due = backend.run(store.claim(dest.id, "w", now + 1, LEASE_MS, 10))
    assert [d.id for d in due] == [c[0].id, c[1].id]


def test_a_claim_can_take_a_share_from_the_newest_first(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    dest = _destination(backend, space)
    old = [backend.run(store.record_event(event(space, "contact", f"o{n}"))) for n in range(3)]
    new = backend.run(store.record_event(event(space, "contact", "n", at=T0 + 50_000)))
    now = T0 + 60_000
    claimed = backend.run(
        store.claim(dest.id, "w", now, LEASE_MS, 2, fresh_limit=1, fresh_since_ms=T0 + 10_000)
    )
    assert sorted(c.inbox_id for c in claimed) == [old[0].inbox_id, new.inbox_id]
    # without a share for the newest: oldest due first
    rest = backend.run(store.claim(dest.id, "w", now, LEASE_MS, 1))
    assert [c.inbox_id for c in rest] == [old[1].inbox_id]


def test_settled_deliveries_are_pruned_by_status_and_age_in_batches(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    dest = _destination(backend, space)
    old = 1_000_000  # long before anything else in the suite
    for n in range(4):
        backend.run(store.record_event(event(space, "contact", f"u{n}", at=old)))
    claimed = backend.run(store.claim(dest.id, "w", old + 1, LEASE_MS, 10))
    failed = _sent(claimed[3], "failed_permanently", last_status=400, outcome="fail")
    backend.run(store.settle_deliveries("w", [*map(_sent, claimed[:3]), failed], old + 2))
    # a newer delivery and a newer attempt, neither settled
    backend.run(store.record_event(event(space, "contact", "later")))
    (later,) = backend.run(store.claim(dest.id, "w", T0 + 1000, LEASE_MS, 10))
    retry = _sent(later, "retrying", next_attempt_ms=T0 + 60_000, outcome="retry")
    backend.run(store.settle_deliveries("w", [retry], T0 + 1000))
    assert backend.run(store.prune_settled_deliveries("sent", old + 10, 2)) == 2
    assert backend.run(store.prune_settled_deliveries("sent", old + 10, 2)) == 1
    assert backend.run(store.prune_settled_deliveries("sent", old + 10, 2)) == 0
    assert backend.run(store.delivery_counts(space)) == {"failed_permanently": 1, "retrying": 1}
    assert backend.run(store.prune_settled_deliveries("failed_permanently", old + 1, 10)) == 0
    assert backend.run(store.prune_settled_deliveries("failed_permanently", old + 10, 10)) == 1
    assert backend.run(store.delivery_counts(space)) == {"retrying": 1}
    # the destination's delivery health still counts what was pruned
    (health,) = backend.run(store.delivery_health(space, T0 + 2000))
    assert health.id == dest.id
    assert health.counts["sent"] == 3 and health.counts["failed_permanently"] == 1


def test_the_storage_figures_are_the_operators_counts_in_one_read(backend: Backend) -> None:
    store = backend.store
    before = backend.run(store.storage_figures())
    space = backend.space().space.id
    dest = _destination(backend, space)
    backend.run(store.record_event(event(space, "contact", "u1")))
    backend.run(store.update_destination(space, dest.id, T0, health_reason="token expired"))
    figures = backend.run(store.storage_figures())
    assert figures.outbox["pending"] == before.outbox["pending"] + 1
    assert figures.unhealthy[dest.kind.value] == before.unhealthy.get(dest.kind.value, 0) + 1
    assert dict(figures.outbox) == backend.run(store.outbox_depth())
    assert dict(figures.unhealthy) == backend.run(store.unhealthy_by_kind())
    assert figures.wal_bytes is None or figures.wal_bytes >= 0
