"""The link services' rules (services/links.py), for every front end at once: the slug, the
link's fields, a slug unique on the server, and telling the landing's cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.services_env import Env, services
from xtracker_server.errors import api_error
from xtracker_server.services import OPERATOR, Conflict, Invalid, NotFound, links

BOT = {"kind": "bot", "target": "@my_offer_bot"}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with services(tmp_path) as found:
        yield found


def test_a_link_is_created_and_the_landing_told(env: Env) -> None:
    space_id = env.space().space.id
    link = env.run(links.create_link(OPERATOR, env.ctx, space_id, {"slug": " promo ", **BOT}))
    assert (link.slug, link.spec.target, link.enabled) == ("promo", "my_offer_bot", True)
    assert env.heard.calls == [("link_changed", "promo")]
    assert [x.slug for x in env.run(links.list_links(OPERATOR, env.ctx, space_id))] == ["promo"]


@pytest.mark.parametrize("slug", [None, 5, "", "-promo", "Promo!", "x" * 65])
def test_a_slug_is_checked(env: Env, slug: object) -> None:
    space_id = env.space().space.id
    with pytest.raises(Invalid) as refused:
        env.run(links.create_link(OPERATOR, env.ctx, space_id, {"slug": slug, **BOT}))
    assert refused.value.field == "slug"


def test_every_bad_field_of_a_link_is_named(env: Env) -> None:
    space_id = env.space().space.id
    with pytest.raises(Invalid) as refused:
        env.run(
            links.create_link(
                OPERATOR,
                env.ctx,
                space_id,
                {"slug": "promo", "kind": "web", "target": "ftp://x", "y": 1},
            )
        )
    fields = [field for field, _ in refused.value.problems]
    assert fields == ["target", "y"]
    answer = api_error(refused.value)
    assert (answer.status, answer.extra["field"]) == (422, "target")
    assert answer.extra["fields"][1] == {"field": "y", "problem": "is not a known field"}


def test_a_slug_is_unique_on_the_server(env: Env) -> None:
    mine, theirs = env.space("mine").space.id, env.space("theirs").space.id
    env.run(links.create_link(OPERATOR, env.ctx, theirs, {"slug": "promo", **BOT}))
    with pytest.raises(Conflict) as taken:
        env.run(links.create_link(OPERATOR, env.ctx, mine, {"slug": "promo", **BOT}))
    assert (taken.value.code, taken.value.field) == ("slug_taken", "slug")
    answer = api_error(taken.value)
    assert (answer.status, answer.extra) == (409, {"field": "slug"})


def test_a_link_is_changed_as_a_whole_link(env: Env) -> None:
    space_id = env.space().space.id
    env.run(links.create_link(OPERATOR, env.ctx, space_id, {"slug": "promo", **BOT}))
    env.heard.calls.clear()
    off = env.run(links.update_link(OPERATOR, env.ctx, space_id, "promo", {"enabled": False}))
    assert off.enabled is False
    assert env.heard.calls == [("link_changed", "promo")]
    with pytest.raises(Invalid) as refused:
        env.run(links.update_link(OPERATOR, env.ctx, space_id, "promo", {"kind": "web"}))
    assert refused.value.field == "target"  # a bot's target is no web URL
    with pytest.raises(Invalid) as unknown:
        env.run(links.update_link(OPERATOR, env.ctx, space_id, "promo", {"color": "red"}))
    assert unknown.value.problems == (("color", "is not a field of a link"),)
    assert env.heard.calls == [("link_changed", "promo")]


def test_another_spaces_link_is_not_found(env: Env) -> None:
    mine, theirs = env.space("mine").space.id, env.space("theirs").space.id
    env.run(links.create_link(OPERATOR, env.ctx, theirs, {"slug": "promo", **BOT}))
    with pytest.raises(NotFound) as missing:
        env.run(links.update_link(OPERATOR, env.ctx, mine, "promo", {"enabled": False}))
    assert missing.value.detail == f"no link 'promo' in space {mine}"
    assert env.run(links.list_links(OPERATOR, env.ctx, theirs))[0].enabled is True
