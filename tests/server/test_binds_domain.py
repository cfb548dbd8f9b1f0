"""Who may replace whom among binds (domain/binds.py), without a database."""

from __future__ import annotations

import pytest

from xtracker_server.domain.binds import BindAction, BindKind, BindPlan, outranks, plan_bind

BEARER, TOKEN = BindKind.BEARER, BindKind.TOKEN


def plan(
    new: BindKind,
    *,
    pair: BindKind | None = None,
    uid_holder: BindKind | None = None,
    user_bind: BindKind | None = None,
    token_binds: bool = True,
) -> BindPlan:
    return plan_bind(
        new, token_binds=token_binds, pair=pair, uid_holder=uid_holder, user_bind=user_bind
    )


def test_only_a_bearer_bind_outranks_and_only_a_token_bind() -> None:
    assert outranks(BEARER, TOKEN)
    assert not outranks(BEARER, BEARER)
    assert not outranks(TOKEN, TOKEN)
    assert not outranks(TOKEN, BEARER)


@pytest.mark.parametrize("new", [BEARER, TOKEN])
def test_a_first_bind_of_a_free_uid_and_an_unbound_user_binds(new: BindKind) -> None:
    assert plan(new) == BindPlan(BindAction.BIND)


@pytest.mark.parametrize("user_bind", [BEARER, TOKEN])
def test_a_token_bind_never_replaces_a_users_bind(user_bind: BindKind) -> None:
    assert plan(TOKEN, user_bind=user_bind) == BindPlan(BindAction.IGNORE)


def test_a_bearer_bind_replaces_a_users_token_bind() -> None:
    assert plan(BEARER, user_bind=TOKEN) == BindPlan(BindAction.BIND, replace_user_bind=True)


def test_a_later_bearer_bind_stands_next_to_the_earlier_ones_last_click_wins() -> None:
    assert plan(BEARER, user_bind=BEARER) == BindPlan(BindAction.BIND)


@pytest.mark.parametrize(("new", "holder"), [(BEARER, BEARER), (TOKEN, BEARER), (TOKEN, TOKEN)])
def test_the_first_bind_of_a_uid_stays_against_an_equal_or_weaker_one(
    new: BindKind, holder: BindKind
) -> None:
    assert plan(new, uid_holder=holder) == BindPlan(BindAction.CONFLICT)


def test_a_bearer_bind_takes_a_uid_from_a_token_bind_of_another_user() -> None:
    assert plan(BEARER, uid_holder=TOKEN) == BindPlan(BindAction.BIND, take_uid=True)
    both = plan(BEARER, uid_holder=TOKEN, user_bind=TOKEN)
    assert both == BindPlan(BindAction.BIND, take_uid=True, replace_user_bind=True)


def test_a_taken_uid_is_a_conflict_before_an_ignored_token_bind() -> None:
    assert plan(TOKEN, uid_holder=TOKEN, user_bind=BEARER).action is BindAction.CONFLICT


def test_the_same_pair_again_is_unchanged_and_the_bot_confirms_a_token_pair() -> None:
    assert plan(TOKEN, pair=TOKEN) == BindPlan(BindAction.UNCHANGED)
    assert plan(TOKEN, pair=BEARER) == BindPlan(BindAction.UNCHANGED)
    assert plan(BEARER, pair=BEARER) == BindPlan(BindAction.UNCHANGED)
    assert plan(BEARER, pair=TOKEN) == BindPlan(BindAction.UNCHANGED, confirm=True)


@pytest.mark.parametrize("pair", [None, TOKEN])
def test_a_space_without_token_binds_refuses_every_token_bind(pair: BindKind | None) -> None:
    assert plan(TOKEN, pair=pair, token_binds=False) == BindPlan(BindAction.REFUSE)


def test_a_space_without_token_binds_still_takes_the_bots_binds() -> None:
    assert plan(BEARER, token_binds=False) == BindPlan(BindAction.BIND)
