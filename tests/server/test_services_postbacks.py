"""The postback services' rules (services/postbacks.py), for every front end at once: alias
changes (all or nothing, a removal only of an alias in effect), and the postback URLs' token
(given and checked, rotated, or a placeholder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.services_env import Env, services
from xtracker_server.domain.postback_urls import TOKEN_PLACEHOLDER
from xtracker_server.services import OPERATOR, Invalid, postbacks


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with services(tmp_path) as found:
        yield found


def test_alias_changes_are_merged_and_the_cache_told(env: Env) -> None:
    space_id = env.space().space.id
    after = env.run(
        postbacks.change_aliases(
            OPERATOR, env.ctx, space_id,
            statuses={"Approved": "deposit", "ftd": None}, params={"TX": "eid"},
        )
    )  # fmt: skip
    assert after.statuses["approved"] == "deposit" and "ftd" not in after.statuses
    assert after.params["tx"] == "eid"
    assert after.origins[("status", "ftd")] == "removed"
    assert env.heard.calls == [("aliases_changed", space_id)]
    assert env.run(postbacks.aliases(OPERATOR, env.ctx, space_id)) == after


@pytest.mark.parametrize(
    ("statuses", "params", "field"),
    [
        ({"nope": None}, {}, "statuses.nope"),
        ({}, {"nope": None}, "params.nope"),
        ({"approved": 5}, {}, "statuses.approved"),
        ({"approved": "refund"}, {}, "statuses.approved"),
        ({}, {"tx": "price"}, "params.tx"),
    ],
)
def test_one_bad_alias_change_changes_nothing(
    env: Env, statuses: dict[str, object], params: dict[str, object], field: str
) -> None:
    space_id = env.space().space.id
    before = env.run(postbacks.aliases(OPERATOR, env.ctx, space_id))
    with pytest.raises(Invalid) as refused:
        env.run(
            postbacks.change_aliases(
                OPERATOR, env.ctx, space_id,
                statuses={"sale": None, **statuses}, params={"cid": None, **params},
            )
        )  # fmt: skip
    assert refused.value.field == field
    assert env.run(postbacks.aliases(OPERATOR, env.ctx, space_id)) == before
    assert env.heard.calls == []


def test_postback_urls_carry_a_placeholder_a_checked_token_or_a_new_one(env: Env) -> None:
    space = env.space()
    space_id, ctx = space.space.id, env.ctx
    placeholder = env.run(postbacks.make_urls(OPERATOR, ctx, space_id, network="generic"))
    assert placeholder.source == "placeholder"
    assert all(TOKEN_PLACEHOLDER in u.url for u in placeholder.urls.urls)
    assert all(u.url.startswith("https://track.example.test/e?") for u in placeholder.urls.urls)
    given = env.run(
        postbacks.make_urls(
            OPERATOR, ctx, space_id, network="generic", token=f" {space.ingest_token} "
        )
    )
    assert given.source == "given"
    assert all(space.ingest_token in u.url for u in given.urls.urls)
    rotated = env.run(postbacks.make_urls(OPERATOR, ctx, space_id, network="1win", rotate=True))
    assert rotated.source == "rotated"
    new = rotated.urls.urls[0].url
    assert "xt_it_" in new and space.ingest_token not in new


def test_a_token_for_the_urls_must_be_a_live_ingest_token_of_the_space(env: Env) -> None:
    mine, theirs = env.space("mine"), env.space("theirs")
    for token in (theirs.ingest_token, mine.bearer, "xt_it_made-up"):
        with pytest.raises(Invalid) as refused:
            env.run(
                postbacks.make_urls(
                    OPERATOR, env.ctx, mine.space.id, network="generic", token=token
                )
            )
        assert refused.value.detail == f"token: is not a live ingest token of space {mine.space.id}"


@pytest.mark.parametrize(
    ("network", "event", "token", "rotate", "field"),
    [
        ("myspace", "all", None, False, "network"),
        ("generic", "refund", None, False, "event"),
        ("generic", "all", "xt_it_x", True, "token"),
    ],
)
def test_bad_url_requests_are_refused_before_anything_rotates(
    env: Env, network: str, event: str, token: str | None, rotate: bool, field: str
) -> None:
    space = env.space()
    with pytest.raises(Invalid) as refused:
        env.run(
            postbacks.make_urls(
                OPERATOR, env.ctx, space.space.id, network=network, event=event, token=token,
                rotate=rotate,
            )
        )  # fmt: skip
    assert refused.value.field == field
    still = env.run(
        postbacks.make_urls(
            OPERATOR, env.ctx, space.space.id, network="generic", token=space.ingest_token
        )
    )
    assert still.source == "given"


def test_the_postback_log_is_read_by_outcome(env: Env) -> None:
    space_id = env.space().space.id
    assert env.run(postbacks.postback_log(OPERATOR, env.ctx, space_id, outcome="queued")) == []
    with pytest.raises(Invalid) as refused:
        env.run(postbacks.postback_log(OPERATOR, env.ctx, space_id, outcome="lost"))
    assert refused.value.field == "outcome"
