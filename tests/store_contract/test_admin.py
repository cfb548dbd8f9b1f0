"""The Store contract, what the operator manages: spaces and their credentials, currencies,
links, destinations and postback aliases. Not found is None (or False, or empty), conflicts
raise the domain's errors, and no space sees another's."""

from __future__ import annotations

import pytest

from tests.store_contract.conftest import T0, Backend
from xtracker_server.domain.credentials import ROTATION_GRACE_MS, CredentialKind, hash_secret
from xtracker_server.domain.destinations import (
    DestinationInput,
    DestinationKind,
    PreparedDestination,
    prepare_destination,
)
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.postbacks import DEFAULT_STATUS_ALIASES
from xtracker_server.store.api import NoSuchToken, SlugTaken, TokenNameTaken

NOWHERE = 10**9  # a space id no test creates


def webhook(url: str = "http://127.0.0.1:9/hook") -> PreparedDestination:
    return prepare_destination(DestinationInput(kind=DestinationKind.WEBHOOK, url=url))


def test_a_new_space_has_a_bearer_and_a_default_ingest_token(backend: Backend) -> None:
    new = backend.space()
    store = backend.store
    assert backend.run(store.get_space(new.space.id)) == new.space
    assert new.space in backend.run(store.list_spaces())
    bearer = backend.run(store.find_credential(hash_secret(new.bearer), T0))
    token = backend.run(store.find_credential(hash_secret(new.ingest_token), T0))
    assert bearer is not None and (bearer.space_id, bearer.kind) == (
        new.space.id,
        CredentialKind.BEARER,
    )
    assert token is not None and (token.kind, token.name) == (CredentialKind.INGEST, "default")
    assert [t.name for t in backend.run(store.list_ingest_tokens(new.space.id, T0))] == ["default"]
    assert backend.run(store.get_space(NOWHERE)) is None
    assert backend.run(store.find_credential(hash_secret("xt_not_a_secret"), T0)) is None


def test_a_rotated_secret_keeps_working_for_its_grace_then_stops(backend: Backend) -> None:
    new = backend.space()
    store = backend.store
    space = new.space.id
    rotation = backend.run(store.rotate_credential(space, CredentialKind.BEARER, T0))
    assert rotation is not None and rotation.previous_valid_until_ms == T0 + ROTATION_GRACE_MS
    old = hash_secret(new.bearer)
    assert backend.run(store.find_credential(old, T0 + ROTATION_GRACE_MS - 1)) is not None
    assert backend.run(store.find_credential(old, T0 + ROTATION_GRACE_MS)) is None
    assert backend.run(store.find_credential(hash_secret(rotation.secret), T0 + 1)) is not None
    revoked = backend.run(store.revoke_previous(space, CredentialKind.BEARER, T0 + 1))
    assert revoked is not None and revoked.hashes == (old,)
    assert backend.run(store.find_credential(old, T0 + 2)) is None
    assert backend.run(store.rotate_credential(NOWHERE, CredentialKind.BEARER, T0)) is None
    assert backend.run(store.revoke_previous(NOWHERE, CredentialKind.BEARER, T0)) is None


def test_named_ingest_tokens_are_unique_while_live(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    added = backend.run(store.add_ingest_token(space, "network-a", T0))
    assert added is not None and added.name == "network-a"
    with pytest.raises(TokenNameTaken):
        backend.run(store.add_ingest_token(space, "network-a", T0))
    assert backend.run(store.is_ingest_token_of(space, added.secret, T0)) is True
    other = backend.space().space.id
    assert backend.run(store.is_ingest_token_of(other, added.secret, T0)) is False
    assert backend.run(store.add_ingest_token(other, "network-a", T0)) is not None  # per space
    revoked = backend.run(store.revoke_ingest_token(space, "network-a", T0 + 1))
    assert revoked is not None and revoked.revoked == 1
    assert backend.run(store.is_ingest_token_of(space, added.secret, T0 + 2)) is False
    assert backend.run(store.add_ingest_token(space, "network-a", T0 + 2)) is not None
    nothing = backend.run(store.revoke_ingest_token(space, "never-made", T0))
    assert nothing is not None and nothing.revoked == 0
    assert backend.run(store.add_ingest_token(NOWHERE, "x", T0)) is None


def test_rotating_an_ingest_token_it_does_not_have_raises(backend: Backend) -> None:
    space = backend.space().space.id
    with pytest.raises(NoSuchToken):
        backend.run(backend.store.rotate_credential(space, CredentialKind.INGEST, T0, "missing"))


def test_one_operator_token_at_a_time(backend: Backend) -> None:
    store = backend.store
    first = backend.run(store.reset_admin_token(T0))
    assert backend.run(store.has_admin_token()) is True
    second = backend.run(store.reset_admin_token(T0 + 1))
    found = backend.run(store.find_credential(hash_secret(second), T0 + 2))
    assert found is not None and (found.kind, found.space_id) == (CredentialKind.ADMIN, None)
    assert backend.run(store.find_credential(hash_secret(first), T0 + 2)) is None


def test_a_spaces_currencies_are_its_own(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    assert backend.run(store.allowed_currencies(a)) == ()
    assert backend.run(store.set_allowed_currencies(a, ("EUR", "USD"))) is True
    assert backend.run(store.allowed_currencies(a)) == ("EUR", "USD")
    assert backend.run(store.allowed_currencies(b)) == ()
    assert backend.run(store.allowed_currencies(NOWHERE)) is None
    assert backend.run(store.set_allowed_currencies(NOWHERE, ("USD",))) is False


def test_a_link_is_found_in_its_space_and_by_its_public_slug(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    link = backend.link(a)
    assert backend.run(store.link_by_slug(a, link.slug)) == link
    assert backend.run(store.link_by_slug(b, link.slug)) is None
    assert backend.run(store.resolve_slug(link.slug)) == link
    assert backend.run(store.resolve_slug("no-such-slug")) is None
    assert backend.run(store.list_links(a)) == [link] and backend.run(store.list_links(b)) == []


def test_a_slug_is_taken_across_spaces(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    link = backend.link(a)
    spec = LinkSpec(kind=LinkKind.BOT, target="other_bot")
    with pytest.raises(SlugTaken):
        backend.run(backend.store.create_link(b, link.slug, spec, T0))


def test_a_link_update_is_checked_and_stays_in_its_space(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    link = backend.link(a)
    updated = backend.run(store.update_link(a, link.slug, {"title": "Join"}, T0 + 5))
    assert updated is not None and updated.spec.title == "Join" and updated.updated_ms == T0 + 5
    assert backend.run(store.link_by_slug(a, link.slug)) == updated
    assert backend.run(store.update_link(b, link.slug, {"title": "x"}, T0)) is None
    with pytest.raises(ValueError):
        backend.run(store.update_link(a, link.slug, {"kind": "no-such-kind"}, T0))
    assert backend.run(store.link_by_slug(a, link.slug)) == updated


def test_a_destination_belongs_to_its_space(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    dest = backend.run(store.create_destination(a, webhook(), T0))
    assert dest is not None and dest.kind is DestinationKind.WEBHOOK and dest.secret
    assert backend.run(store.get_destination(a, dest.id)) == dest
    assert backend.run(store.get_destination(b, dest.id)) is None
    assert backend.run(store.list_destinations(a)) == [dest]
    assert backend.run(store.list_destinations(b)) == []
    assert backend.run(store.space_of_destination(dest.id)) == a
    assert backend.run(store.space_of_destination(NOWHERE)) is None
    assert backend.run(store.create_destination(NOWHERE, webhook(), T0)) is None


def test_a_destination_update_changes_what_it_names(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    dest = backend.run(store.create_destination(a, webhook(), T0))
    assert dest is not None
    changed = backend.run(
        store.update_destination(
            a, dest.id, T0 + 1, name="main", enabled=False, event_map={"deposit": "purchase"}
        )
    )
    assert changed is not None
    assert (changed.name, changed.enabled, changed.event_map["deposit"]) == (
        "main",
        False,
        "purchase",
    )
    assert backend.run(store.update_destination(b, dest.id, T0, name="x")) is None


def test_unhealthy_destinations_are_counted_by_kind(backend: Backend) -> None:
    space = backend.space().space.id
    store = backend.store
    before = backend.run(store.unhealthy_by_kind())
    assert set(before) == {k.value for k in DestinationKind}
    dest = backend.run(store.create_destination(space, webhook(), T0))
    assert dest is not None
    backend.run(store.update_destination(space, dest.id, T0, health_reason="token expired"))
    after = backend.run(store.unhealthy_by_kind())
    assert after["webhook"] == before["webhook"] + 1


def test_postback_aliases_change_all_at_once_per_space(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    defaults = backend.run(store.postback_aliases(a))
    assert dict(defaults.statuses) == dict(DEFAULT_STATUS_ALIASES)
    backend.run(store.set_postback_aliases(a, [("status", "paid", "deposit"),
                                               ("param", "amount", "value")], T0))  # fmt: skip
    changed = backend.run(store.postback_aliases(a))
    assert changed.statuses["paid"] == "deposit" and changed.params["amount"] == "value"
    assert "paid" not in backend.run(store.postback_aliases(b)).statuses
    backend.run(store.set_postback_aliases(a, [("status", "paid", None)], T0 + 1))
    assert "paid" not in backend.run(store.postback_aliases(a)).statuses


def test_a_spaces_sub_id_params_are_its_own(backend: Backend) -> None:
    a, b = backend.space().space.id, backend.space().space.id
    store = backend.store
    assert backend.run(store.sub_id_params(a)) == ()
    assert backend.run(store.set_sub_id_params(a, ("sub1", "creative"))) is True
    assert backend.run(store.sub_id_params(a)) == ("sub1", "creative")  # in the order given
    assert backend.run(store.sub_id_params(b)) == ()
    assert backend.run(store.sub_id_params(NOWHERE)) is None
    assert backend.run(store.set_sub_id_params(NOWHERE, ("sub1",))) is False
