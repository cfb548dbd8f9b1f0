"""Who may call which service (services/principal.py): the operator everything; a space's
bearer secret only its own space's reports and live stream; an ingest token none of them.
A refusal comes before anything is read or changed, and before "no such space" (a space's
credential does not learn which other spaces exist)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.services_env import Env, bearer, services
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.services import (
    OPERATOR,
    Action,
    Forbidden,
    NotFound,
    Principal,
    SpaceCredential,
    authorize,
    credentials,
    currencies,
    deletion,
    deliveries,
    destinations,
    links,
    postbacks,
    reports,
    spaces,
)
from xtracker_server.services.context import Context

Call = Callable[[Principal, Context, int], Awaitable[Any]]

#: Every service on one space that only the operator may call, with harmless arguments.
OPERATOR_ONLY: dict[str, Call] = {
    "token_binds": spaces.token_binds,
    "set_token_binds": lambda w, c, s: spaces.set_token_binds(w, c, s, False),
    "rotate": lambda w, c, s: credentials.rotate(w, c, s, CredentialKind.BEARER),
    "revoke_previous": lambda w, c, s: credentials.revoke_previous(w, c, s, CredentialKind.BEARER),
    "list_ingest_tokens": credentials.list_ingest_tokens,
    "add_ingest_token": lambda w, c, s: credentials.add_ingest_token(w, c, s, "adcombo"),
    "revoke_ingest_token": lambda w, c, s: credentials.revoke_ingest_token(w, c, s, "default"),
    "currencies": currencies.currencies,
    "set_currencies": lambda w, c, s: currencies.set_currencies(w, c, s, ["GEMS"]),
    "list_links": links.list_links,
    "create_link": lambda w, c, s: links.create_link(
        w, c, s, {"slug": "promo", "kind": "bot", "target": "my_offer_bot"}
    ),
    "update_link": lambda w, c, s: links.update_link(w, c, s, "promo", {"enabled": False}),
    "list_destinations": destinations.list_destinations,
    "create_destination": lambda w, c, s: destinations.create_destination(
        w, c, s, {"kind": "fb_capi", "pixel_id": "1234567890", "access_token": "EAAB"}
    ),
    "update_destination": lambda w, c, s: destinations.update_destination(
        w, c, s, 1, {"enabled": True}
    ),
    "test_destination": lambda w, c, s: destinations.test_destination(w, c, s, 1),
    "list_deliveries": deliveries.list_deliveries,
    "delivery_counts": deliveries.delivery_counts,
    "replay": deliveries.replay,
    "postback_log": postbacks.postback_log,
    "aliases": postbacks.aliases,
    "change_aliases": lambda w, c, s: postbacks.change_aliases(w, c, s, statuses={"ftd": None}),
    "make_urls": lambda w, c, s: postbacks.make_urls(w, c, s, network="generic", rotate=True),
    "delete_space": lambda w, c, s: deletion.delete_space(w, c, s),
    "delete_link": lambda w, c, s: deletion.delete_link(w, c, s, "promo"),
    "delete_destination": lambda w, c, s: deletion.delete_destination(w, c, s, 1),
    "erase": lambda w, c, s: deletion.erase(w, c, s, {"uid": "u1"}),
}

#: The services a space's bearer secret may call on its own space.
READERS: dict[str, Call] = {
    "funnel": reports.funnel,
    "links": reports.links,
    "series": lambda w, c, s: reports.series(w, c, s, metric="click"),
    "deliveries": reports.deliveries,
    "stream_start": reports.stream_start,
}


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One database for the module: each test works in spaces of its own (opening a store per
    test cost more than the test), and the ids asked for as missing are never reached."""
    with services(tmp_path_factory.mktemp("access")) as found:
        yield found


@pytest.fixture
def env(shared_env: Env) -> Env:
    shared_env.heard.calls.clear()  # what this test's calls told, only
    return shared_env


def _state(env: Env, space_id: int) -> tuple[Any, ...]:
    """What the space holds, to show that a refused call changed nothing."""
    ctx = env.ctx
    return (
        env.run(links.list_links(OPERATOR, ctx, space_id)),
        env.run(destinations.list_destinations(OPERATOR, ctx, space_id)),
        env.run(credentials.list_ingest_tokens(OPERATOR, ctx, space_id)),
        env.run(currencies.currencies(OPERATOR, ctx, space_id)),
        env.run(spaces.token_binds(OPERATOR, ctx, space_id)),
        env.run(postbacks.aliases(OPERATOR, ctx, space_id)),
    )


@pytest.mark.parametrize("name", sorted(OPERATOR_ONLY))
def test_another_spaces_bearer_is_forbidden_and_changes_nothing(env: Env, name: str) -> None:
    mine, theirs = env.space("mine"), env.space("theirs")
    before = _state(env, theirs.space.id)
    with pytest.raises(Forbidden):
        env.run(OPERATOR_ONLY[name](bearer(mine), env.ctx, theirs.space.id))
    assert _state(env, theirs.space.id) == before
    assert env.heard.calls == []


@pytest.mark.parametrize("name", sorted(OPERATOR_ONLY))
def test_a_spaces_own_bearer_may_not_manage_it(env: Env, name: str) -> None:
    mine = env.space("mine")
    before = _state(env, mine.space.id)
    with pytest.raises(Forbidden, match="admin token"):
        env.run(OPERATOR_ONLY[name](bearer(mine), env.ctx, mine.space.id))
    assert _state(env, mine.space.id) == before


@pytest.mark.parametrize("name", sorted(OPERATOR_ONLY))
def test_the_operator_is_told_of_a_missing_space(env: Env, name: str) -> None:
    with pytest.raises(NotFound) as refused:
        env.run(OPERATOR_ONLY[name](OPERATOR, env.ctx, 4242))
    assert (refused.value.what, refused.value.space_id) == ("space", 4242)


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_bearer_reads_its_own_spaces_reports(env: Env, name: str) -> None:
    mine = env.space("mine")
    env.run(READERS[name](bearer(mine), env.ctx, mine.space.id))
    env.run(READERS[name](OPERATOR, env.ctx, mine.space.id))


@pytest.mark.parametrize("name", sorted(READERS))
def test_another_spaces_bearer_reads_no_reports_not_even_whether_it_exists(
    env: Env, name: str
) -> None:
    mine, theirs = env.space("mine"), env.space("theirs")
    for space_id in (theirs.space.id, 4242):
        with pytest.raises(Forbidden, match=f"not space {space_id}'s"):
            env.run(READERS[name](bearer(mine), env.ctx, space_id))
    with pytest.raises(NotFound):
        env.run(READERS[name](OPERATOR, env.ctx, 4242))


@pytest.mark.parametrize("name", sorted(READERS))
def test_an_ingest_token_reads_no_reports(env: Env, name: str) -> None:
    mine = env.space("mine")
    ingest = SpaceCredential(mine.space.id, CredentialKind.INGEST)
    with pytest.raises(Forbidden):
        env.run(READERS[name](ingest, env.ctx, mine.space.id))


def test_only_the_operator_administers_the_server(tmp_path: Path) -> None:
    with services(tmp_path) as env:  # a database of its own: it lists every space
        _only_the_operator_administers(env)


def _only_the_operator_administers(env: Env) -> None:
    mine = env.space("mine")
    for who in (bearer(mine), SpaceCredential(mine.space.id, CredentialKind.INGEST)):
        with pytest.raises(Forbidden):
            env.run(spaces.list_spaces(who, env.ctx))
        with pytest.raises(Forbidden):
            env.run(spaces.create_space(who, env.ctx, "another"))
        with pytest.raises(Forbidden):
            env.run(credentials.reset_admin_token(who, env.ctx))
        with pytest.raises(Forbidden):
            env.run(destinations.destination_space(who, env.ctx, 1))
    assert [s.name for s in env.run(spaces.list_spaces(OPERATOR, env.ctx))] == ["mine"]


@pytest.mark.parametrize("action", list(Action))
def test_the_operator_may_do_everything(action: Action) -> None:
    authorize(OPERATOR, action, 7)
    authorize(OPERATOR, action)
