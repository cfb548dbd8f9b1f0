"""The deletion services (services/deletion.py): a dry run counts and removes nothing, a
deletion tells the process what stopped (its caches), an erasure names one person."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.services_env import PUBLIC_HOST, Env, services
from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.credentials import hash_secret
from xtracker_server.services import (
    OPERATOR,
    Invalid,
    NotFound,
    deletion,
    destinations,
    links,
    spaces,
)
from xtracker_server.store.sqlite.clicks import insert_click
from xtracker_server.store.sqlite.spaces import find_credential

BOT = {"kind": "bot", "target": "my_offer_bot"}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with services(tmp_path) as found:
        yield found


def _click(env: Env, space_id: int, uid: str) -> None:
    draft = ClickDraft(space_id=space_id, uid=uid, created_ms=env.ctx.clock(), source="api")
    env.run(env.ctx.store.write(insert_click, draft))


def test_deleting_a_space_ends_its_credentials_and_links_and_tells_the_process(env: Env) -> None:
    space = env.space()
    space_id = space.space.id
    env.run(links.create_link(OPERATOR, env.ctx, space_id, {"slug": "promo", **BOT}))
    _click(env, space_id, "u1")
    counted = env.run(deletion.delete_space(OPERATOR, env.ctx, space_id, dry_run=True))
    assert (counted["links"], counted["clicks"], counted["credentials"]) == (1, 1, 2)
    assert [s.id for s in env.run(spaces.list_spaces(OPERATOR, env.ctx))] == [space_id]
    env.heard.calls.clear()
    removed = env.run(deletion.delete_space(OPERATOR, env.ctx, space_id))
    assert removed == counted
    assert env.heard.calls == [("space_deleted", (space_id, ("promo",)))]
    assert env.run(spaces.list_spaces(OPERATOR, env.ctx)) == []
    bearer_now = env.ctx.store.read(find_credential, hash_secret(space.bearer), env.ctx.clock())
    assert env.run(bearer_now) is None
    with pytest.raises(NotFound):
        env.run(deletion.delete_space(OPERATOR, env.ctx, space_id))


def test_deleting_a_link_tells_the_landing_and_keeps_its_clicks(env: Env) -> None:
    space_id = env.space().space.id
    env.run(links.create_link(OPERATOR, env.ctx, space_id, {"slug": "promo", **BOT}))
    env.heard.calls.clear()
    counted = env.run(deletion.delete_link(OPERATOR, env.ctx, space_id, "promo", dry_run=True))
    assert env.heard.calls == []
    assert env.run(deletion.delete_link(OPERATOR, env.ctx, space_id, "promo")) == counted
    assert env.heard.calls == [("link_changed", "promo")]
    assert env.run(links.list_links(OPERATOR, env.ctx, space_id)) == []
    with pytest.raises(NotFound) as missing:
        env.run(deletion.delete_link(OPERATOR, env.ctx, space_id, "promo", dry_run=True))
    assert missing.value.detail == f"no link 'promo' in space {space_id}"


def test_another_spaces_destination_is_not_deleted(env: Env) -> None:
    mine, theirs = env.space("mine").space.id, env.space("theirs").space.id
    new = env.run(
        destinations.create_destination(
            OPERATOR, env.ctx, theirs, {"kind": "webhook", "url": f"https://{PUBLIC_HOST}/h"}
        )
    )
    dest = new.destination.id
    for dry_run in (True, False):
        with pytest.raises(NotFound) as missing:
            env.run(deletion.delete_destination(OPERATOR, env.ctx, mine, dest, dry_run=dry_run))
        assert missing.value.detail == f"no destination {dest} in space {mine}"
    assert len(env.run(destinations.list_destinations(OPERATOR, env.ctx, theirs))) == 1
    env.run(deletion.delete_destination(OPERATOR, env.ctx, theirs, dest))
    assert env.run(destinations.list_destinations(OPERATOR, env.ctx, theirs)) == []


@pytest.mark.parametrize(
    ("named", "field"),
    [
        ({}, "uid"),
        ({"uid": "u1", "tg_id": 5}, "uid"),
        ({"uid": None, "tg_id": 5}, "uid"),
        ({"uid": None}, "uid"),
        ({"uid": "  "}, "uid"),
        ({"tg_id": -1}, "tg_id"),
        ({"tg_id": "5x"}, "tg_id"),
    ],
)
def test_an_erasure_names_one_person(env: Env, named: dict[str, object], field: str) -> None:
    space_id = env.space().space.id
    _click(env, space_id, "u1")
    with pytest.raises(Invalid) as refused:
        env.run(deletion.erase(OPERATOR, env.ctx, space_id, named))
    assert refused.value.field == field
    counted = env.run(deletion.erase(OPERATOR, env.ctx, space_id, {"uid": "u1"}, dry_run=True))
    assert counted.removed["clicks"] == 1


def test_an_erasure_removes_the_persons_clicks(env: Env) -> None:
    space_id = env.space().space.id
    _click(env, space_id, "u1")
    _click(env, space_id, "u2")
    erased = env.run(deletion.erase(OPERATOR, env.ctx, space_id, {"uid": " u1 "}))
    assert (erased.person.uid, erased.removed["clicks"]) == ("u1", 1)
    again = env.run(deletion.erase(OPERATOR, env.ctx, space_id, {"uid": "u2"}, dry_run=True))
    assert again.removed["clicks"] == 1
