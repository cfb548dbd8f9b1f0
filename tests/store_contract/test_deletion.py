"""The Store contract, deletion and erasure: a mark makes a thing gone for every reader at once,
its rows go in batches, an erased person stays nowhere (reports included), another space keeps
everything; and what housekeeping prunes."""

from __future__ import annotations

from tests.store_contract.conftest import T0, Backend, event, log_entry
from tests.store_contract.test_admin import webhook
from xtracker_server.domain.credentials import hash_secret
from xtracker_server.domain.deletion import Person
from xtracker_server.domain.entities import Batch
from xtracker_server.domain.reports import Window

DAY = Window(T0, T0 + 86_400_000)


def test_a_marked_space_is_gone_at_once_and_its_rows_go_in_batches(backend: Backend) -> None:
    new, other = backend.space(), backend.space()
    store = backend.store
    space = new.space.id
    link = backend.link(space)
    for n in range(7):
        backend.click(space, f"u{n}", link.id)
        backend.run(store.record_event(event(space, "contact", f"u{n}")))
    backend.click(other.space.id, "u0")
    counts = backend.run(store.space_counts(space))
    assert counts is not None and (counts["clicks"], counts["events"], counts["links"]) == (7, 7, 1)
    marked = backend.run(store.mark_space(space, T0))
    assert marked is not None and marked.slugs == (link.slug,)
    assert backend.run(store.get_space(space)) is None
    assert backend.run(store.find_credential(hash_secret(new.bearer), T0)) is None
    assert backend.run(store.resolve_slug(link.slug)) is None
    resumed = backend.run(store.mark_space(space, T0 + 1))  # a deletion cut short goes on
    assert resumed is not None and resumed.removed == {"credentials": 0}
    assert backend.run(store.unfinished_deletions(T0 + 1)) == [("space", space, space)]
    batches: list[Batch] = []
    while not batches or not batches[-1].done:
        batches.append(backend.run(store.delete_space_batch(space, 5)))
    assert len(batches) > 1 and sum(b.removed["clicks"] for b in batches) == 7
    assert backend.run(store.space_counts(space)) is None
    assert backend.run(store.mark_space(space, T0)) is None  # deleted: nothing to mark
    assert ("space", space, space) not in backend.run(store.unfinished_deletions(T0 + 1))
    assert backend.run(store.get_space(other.space.id)) == other.space
    assert len(backend.run(store.tail_range(other.space.id, (0, 0, 0), (10**9,) * 3)).items) == 1


def test_a_deleted_link_takes_its_landing_and_leaves_its_clicks(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    link = backend.link(space)
    backend.click(space, "c1", link.id)
    assert backend.run(store.link_counts(space, link.slug)) == {
        "links": 1, "clicks_unlinked": 1, "events_unlinked": 0, "unrecorded_clicks": 0,
    }  # fmt: skip
    assert backend.run(store.link_counts(backend.space().space.id, link.slug)) is None
    marked = backend.run(store.mark_link(space, link.slug, T0))
    assert marked is not None
    assert backend.run(store.link_by_slug(space, link.slug)) is None
    assert backend.run(store.slug_of_link(space, link.id)) == link.slug
    while not backend.run(store.delete_link_batch(space, link.id, 100)).done:
        pass
    assert backend.run(store.slug_of_link(space, link.id)) is None
    assert backend.run(store.click_seen(space, link.id, "c1", T0)) is False
    assert backend.run(store.mark_link(space, "no-such-slug", T0)) is None


def test_a_deleted_destination_gets_nothing_more(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    dest = backend.run(store.create_destination(space, webhook(), T0))
    assert dest is not None
    backend.run(store.record_event(event(space, "contact", "u1")))
    found = backend.run(store.destination_counts(space, dest.id))
    assert found is not None and found["deliveries_pending"] == 1
    assert backend.run(store.mark_destination(space, dest.id, T0)) is not None
    assert backend.run(store.get_destination(space, dest.id)) is None
    assert backend.run(store.record_event(event(space, "contact", "u2"))).deliveries == 0
    while not backend.run(store.delete_destination_batch(space, dest.id, 100)).done:
        pass
    assert backend.run(store.delivery_counts(space)) == {}
    assert backend.run(store.destination_counts(space, dest.id)) is None


def test_an_erased_person_stays_nowhere_and_others_stay(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    backend.click(space, "gone")
    backend.click(space, "kept")
    backend.run(store.bind(space, "gone", 99, T0))
    backend.run(store.record_event(event(space, "contact", "gone")))
    backend.run(store.record_event(event(space, "contact", "kept")))
    other_uid = backend.run(store.record_event(event(space, "deposit", "elsewhere", tg_id=99,
                                                     value="1", currency="USD")))  # fmt: skip
    backend.run(store.log_postback(log_entry(space, uid="gone", query="uid=gone&token=***")))
    backend.run(store.catch_up_reports())
    person = Person(tg_id=99)
    found = backend.run(store.erasure_counts(space, person))
    assert found is not None and found["clicks"] == 1 and found["binds"] == 1
    erased = backend.run(store.erase_person(space, person))
    assert erased is not None and erased.uids == ("gone",)
    ids = backend.run(store.find_tg_events(space, 99))
    assert ids == [other_uid.inbox_id]
    assert backend.run(store.erase_events(space, ids, erased.uids))["events"] == 1
    rows = backend.run(store.find_log_rows(space, erased.uids, 99))
    assert len(rows) == 1 and backend.run(store.delete_log_rows(space, rows))["postback_log"] == 1
    upto = backend.run(store.applied_removals())
    assert upto > 0 and backend.run(store.removals_pending())
    backend.run(store.prune_removals(upto))
    assert [e.uid for e in backend.run(store.list_events(space))] == ["kept"]
    counts = backend.run(store.funnel_counts(space, DAY))
    assert (counts.uids["contact"], counts.deposits) == (1, 0)
    assert backend.run(store.erasure_counts(backend.space().space.id + 10**6, person)) is None


def test_the_postback_log_is_pruned_by_age_in_batches(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    old = 1_000_000  # long before anything else in the suite
    for n in range(3):
        backend.run(store.log_postback(log_entry(space, at_ms=old + n)))
    backend.run(store.log_postback(log_entry(space)))
    assert backend.run(store.prune_postback_log(old + 10, 2)) == 2
    assert backend.run(store.prune_postback_log(old + 10, 2)) == 1
    assert [e.at_ms for e in backend.run(store.list_postback_log(space))] == [T0]
