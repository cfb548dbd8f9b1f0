"""The Store contract, ingress: events (dedup, conflicts, attribution), clicks, binds and
postbacks, each kept inside its space."""

from __future__ import annotations

import asyncio

from tests.store_contract.conftest import T0, Backend, event, log_entry
from xtracker_server.domain.binds import BindAction, BindKind
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.entities import InboxOutcome


def test_an_event_is_stored_once_and_its_repeat_is_a_duplicate(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    first = backend.run(store.record_event(event(space, "contact", "u1", eid="e1")))
    again = backend.run(store.record_event(event(space, "contact", "u1", eid="e1")))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.inbox_id == first.inbox_id and again.uid == "u1"
    assert [e.id for e in backend.run(store.list_events(space))] == [first.inbox_id]


def test_concurrent_repeats_store_one_event(backend: Backend) -> None:
    space = backend.space().space.id

    async def at_once() -> list[InboxOutcome]:
        drafts = [event(space, "deposit", "u1", eid="tx", value="5", currency="USD")] * 20
        return list(await asyncio.gather(*(backend.store.record_event(d) for d in drafts)))

    outcomes = backend.run(at_once())
    assert len({o.inbox_id for o in outcomes}) == 1
    assert sum(not o.duplicate for o in outcomes) == 1


def test_a_repeat_naming_another_amount_says_so_and_changes_nothing(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    backend.run(store.record_event(event(space, "deposit", "u1", eid="t", value="25.00",
                                         currency="USD")))  # fmt: skip
    again = backend.run(store.record_event(event(space, "deposit", "u1", eid="t", value="30",
                                                 currency="EUR")))  # fmt: skip
    assert again.duplicate and again.conflict is not None
    assert (again.conflict.value, again.conflict.currency) == ("25.00", "USD")
    (stored,) = backend.run(store.list_events(space))
    assert (stored.value, stored.currency) == ("25.00", "USD")


def test_the_same_event_in_two_spaces_is_two_events(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    in_a = backend.run(store.record_event(event(a, "contact", "u1", eid="e1")))
    in_b = backend.run(store.record_event(event(b, "contact", "u1", eid="e1")))
    assert not in_a.duplicate and not in_b.duplicate and in_a.inbox_id != in_b.inbox_id
    assert [e.id for e in backend.run(store.list_events(a))] == [in_a.inbox_id]
    assert [e.id for e in backend.run(store.list_events(b))] == [in_b.inbox_id]


def test_a_batch_of_events_is_stored_in_order_with_its_repeats_as_duplicates(
    backend: Backend,
) -> None:
    space = backend.space().space.id
    store = backend.store
    before = backend.run(store.record_event(event(space, "contact", "b1", eid="known")))
    drafts = [
        event(space, "contact", "b1", eid="new-1"),
        event(space, "contact", "b1", eid="known"),  # stored before the batch
        event(space, "deposit", "b2", eid="tx", value="5", currency="USD"),
        event(space, "deposit", "b2", eid="tx", value="6", currency="USD"),  # a repeat in it
    ]
    outcomes = backend.run(store.record_events(drafts))
    assert [o.duplicate for o in outcomes] == [False, True, False, True]
    assert outcomes[1].inbox_id == before.inbox_id
    assert outcomes[3].inbox_id == outcomes[2].inbox_id and outcomes[3].conflict is not None
    stored = backend.run(store.list_events(space))
    assert [e.id for e in stored] == [outcomes[2].inbox_id, outcomes[0].inbox_id, before.inbox_id]


def test_events_are_listed_newest_first_up_to_the_limit(backend: Backend) -> None:
    space = backend.space().space.id
    ids = [
        backend.run(backend.store.record_event(event(space, "contact", f"u{n}"))).inbox_id
        for n in range(5)
    ]
    listed = backend.run(backend.store.list_events(space, limit=3))
    assert [e.id for e in listed] == ids[::-1][:3]


def test_a_bind_attributes_the_users_earlier_events_and_the_later_ones(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    backend.click(space, "u1")
    early = backend.run(store.record_event(event(space, "contact", None, tg_id=42)))
    assert early.uid is None
    bound = backend.run(store.bind(space, "u1", 42, T0))
    assert (bound.action, bound.matched, bound.attributed) == (BindAction.BIND, True, 1)
    late = backend.run(store.record_event(event(space, "subscribed", None, tg_id=42)))
    assert late.uid == "u1"
    assert {e.uid for e in backend.run(store.list_events(space))} == {"u1"}


def test_a_bind_is_safe_to_retry_and_the_first_bind_of_a_uid_wins(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    assert backend.run(store.bind(space, "u1", 1, T0)).action is BindAction.BIND
    assert backend.run(store.bind(space, "u1", 1, T0 + 1)).action is BindAction.UNCHANGED
    other = backend.run(store.bind(space, "u1", 2, T0 + 2))
    assert other.action is BindAction.CONFLICT and not other.matched  # no click: not matched


def test_token_binds_follow_the_spaces_setting(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    assert backend.run(store.token_binds_allowed(space)) is True  # the default
    assert backend.run(store.set_token_binds(space, False)) is True
    assert backend.run(store.token_binds_allowed(space)) is False
    refused = backend.run(store.bind(space, "u1", 7, T0, BindKind.TOKEN))
    assert refused.action is BindAction.REFUSE
    assert backend.run(store.set_token_binds(space, True)) is True
    assert backend.run(store.bind(space, "u1", 7, T0, BindKind.TOKEN)).action is BindAction.BIND
    assert backend.run(store.set_token_binds(10**9, True)) is False  # no such space


def test_a_bind_in_one_space_attributes_nothing_in_another(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    backend.run(store.record_event(event(b, "contact", None, tg_id=5)))
    backend.run(store.bind(a, "u1", 5, T0))
    assert [e.uid for e in backend.run(store.list_events(b))] == [None]


def test_a_click_keeps_its_uid_and_a_taken_uid_gets_another(backend: Backend) -> None:
    space = backend.space().space.id
    assert backend.click(space, "uid-a") == "uid-a"
    assert backend.click(space, "uid-a") != "uid-a"
    other_space = backend.space().space.id
    assert backend.click(other_space, "uid-a") == "uid-a"  # uids are per space


def test_concurrent_clicks_each_get_their_uid(backend: Backend) -> None:
    space = backend.space().space.id
    drafts = [ClickDraft(space_id=space, uid=f"c{n}", created_ms=T0, source="api")
              for n in range(30)]  # fmt: skip

    async def at_once() -> list[str]:
        return list(await asyncio.gather(*(backend.store.record_click(d) for d in drafts)))

    assert backend.run(at_once()) == [d.uid for d in drafts]


def test_kept_clicks_are_stored_once(backend: Backend) -> None:
    space = backend.space().space.id
    link = backend.link(space)
    drafts = [ClickDraft(space_id=space, uid=f"k{n}", created_ms=T0, source="landing",
                         link_id=link.id) for n in range(3)]  # fmt: skip
    backend.click(space, "k0", link.id)
    assert backend.run(backend.store.record_kept_clicks(drafts)) == 2
    assert backend.run(backend.store.record_kept_clicks(drafts)) == 0


def test_a_repeat_visit_is_a_click_of_that_link_since_then(backend: Backend) -> None:
    space = backend.space().space.id
    link, other = backend.link(space), backend.link(space)
    backend.click(space, "v1", link.id, at=T0)
    store = backend.store
    assert backend.run(store.click_seen(space, link.id, "v1", T0)) is True
    assert backend.run(store.click_seen(space, link.id, "v1", T0 + 1)) is False
    assert backend.run(store.click_seen(space, other.id, "v1", T0)) is False
    elsewhere = backend.space().space.id
    assert backend.run(store.click_seen(elsewhere, link.id, "v1", T0)) is False


def test_a_postback_stores_its_event_and_its_log_row_together(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    backend.click(space, "p1")
    draft = event(space, "deposit", "p1", eid="tx9", value="9.99", currency="USD",
                  source="postback")  # fmt: skip
    outcome, known = backend.run(
        store.record_postback(draft, log_entry(space, token_name="default"))
    )
    again, _ = backend.run(store.record_postback(draft, log_entry(space, token_name="default")))
    assert (outcome.duplicate, known, again.duplicate) == (False, True, True)
    log = backend.run(store.list_postback_log(space))
    assert [(e.outcome, e.inbox_id, e.click_known) for e in log] == [
        ("duplicate", outcome.inbox_id, True),
        ("queued", outcome.inbox_id, True),
    ]
    assert backend.run(store.list_postback_log(space, outcome="queued", limit=1))[0].outcome == (
        "queued"
    )


def test_a_refused_postback_is_logged_without_an_event(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    row = backend.run(store.log_postback(log_entry(space, error="invalid_field", detail="value")))
    (logged,) = backend.run(store.list_postback_log(space))
    assert (logged.id, logged.outcome, logged.error) == (row, "rejected", "invalid_field")
    assert backend.run(store.list_events(space)) == []
    assert backend.run(store.list_postback_log(backend.space().space.id)) == []


def test_the_postback_log_reads_in_pages_below_an_id(backend: Backend) -> None:
    """An export reads a long log page by page: ``before_id`` continues after the last row of
    the page before, in the same order, of the same space and outcome only."""
    space = backend.space().space.id
    other = backend.space().space.id
    store = backend.store
    ids = [backend.run(store.log_postback(log_entry(space, error=f"e{i}"))) for i in range(7)]
    backend.run(store.log_postback(log_entry(other, error="theirs")))
    pages, before = [], None
    while True:
        page = backend.run(store.list_postback_log(space, limit=3, before_id=before))
        if not page:
            break
        pages.append([e.id for e in page])
        before = page[-1].id
    assert pages == [ids[::-1][:3], ids[::-1][3:6], ids[::-1][6:]]
    assert backend.run(store.list_postback_log(space, outcome="queued", before_id=ids[-1])) == []
    assert backend.run(store.list_postback_log(other, before_id=ids[0] + 100))[0].error == "theirs"
