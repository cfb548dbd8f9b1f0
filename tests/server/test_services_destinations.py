"""The destination and delivery services' rules (services/destinations.py, deliveries.py),
for every front end at once: the address guard at creation and on a new proxy, "enable
clears the unhealthy flag", the access token, the event map, and the outbox's statuses.
DNS answers come from a table (tests/fake_resolver.py); nothing is sent anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.services_env import PRIVATE_HOST, PUBLIC_HOST, Env, services
from xtracker_server.services import OPERATOR, Invalid, NotFound, deliveries, destinations
from xtracker_server.store.sqlite import destinations as store

PIXEL = {"kind": "fb_capi", "pixel_id": "1234567890", "access_token": "EAAB-old"}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with services(tmp_path) as found:
        yield found


def _add(env: Env, space_id: int, fields: dict[str, Any]) -> int:
    new = env.run(destinations.create_destination(OPERATOR, env.ctx, space_id, fields))
    return new.destination.id


def _unhealthy(env: Env, space_id: int, destination_id: int) -> None:
    env.run(env.ctx.store.write(store.flag_unhealthy, space_id, destination_id, "token expired"))
    found = env.run(destinations.list_destinations(OPERATOR, env.ctx, space_id))
    assert found[0].health_reason == "token expired"


@pytest.mark.parametrize(
    ("fields", "field", "why"),
    [
        ({"kind": "webhook", "url": "https://127.0.0.1/hook"}, "url", "loopback"),
        ({"kind": "webhook", "url": f"https://{PRIVATE_HOST}/hook"}, "url", "private"),
        (
            {"kind": "s2s_postback", "url_template": "http://10.0.0.3/pb?u={uid}"},
            "url_template",
            "private",
        ),
        ({**PIXEL, "proxy": f"http://user:pass@{PRIVATE_HOST}:3128"}, "proxy", "private"),
    ],
)
def test_a_destination_on_a_private_address_is_refused(
    env: Env, fields: dict[str, Any], field: str, why: str
) -> None:
    space_id = env.space().space.id
    with pytest.raises(Invalid) as refused:
        env.run(destinations.create_destination(OPERATOR, env.ctx, space_id, fields))
    assert refused.value.field == field and why in refused.value.detail
    assert env.run(destinations.list_destinations(OPERATOR, env.ctx, space_id)) == []
    # unless private destinations are allowed (tests, local sinks)
    allowed = env.with_settings(allow_private_destinations=True)
    env.run(destinations.create_destination(OPERATOR, allowed, space_id, fields))


def test_a_destination_on_a_public_address_is_added_with_its_secret_shown_once(env: Env) -> None:
    space_id = env.space().space.id
    new = env.run(
        destinations.create_destination(
            OPERATOR, env.ctx, space_id, {"kind": "webhook", "url": f"https://{PUBLIC_HOST}/h"}
        )
    )
    assert new.secret is not None and new.destination.secret == new.secret
    assert new.destination.name == f"webhook {PUBLIC_HOST}"


def test_a_new_proxy_is_checked_like_a_new_destination(env: Env) -> None:
    space_id = env.space().space.id
    dest = _add(env, space_id, PIXEL)
    change = {"proxy": f"http://{PRIVATE_HOST}:3128"}
    with pytest.raises(Invalid) as refused:
        env.run(destinations.update_destination(OPERATOR, env.ctx, space_id, dest, change))
    assert refused.value.field == "proxy"
    updated = env.run(
        destinations.update_destination(
            OPERATOR, env.ctx, space_id, dest, {"proxy": f"http://{PUBLIC_HOST}:3128"}
        )
    )
    assert updated.proxy == f"http://{PUBLIC_HOST}:3128"


def test_enabling_a_destination_clears_its_unhealthy_flag_and_wakes_the_worker(env: Env) -> None:
    space_id = env.space().space.id
    dest = _add(env, space_id, PIXEL)
    _unhealthy(env, space_id, dest)
    off = env.run(
        destinations.update_destination(OPERATOR, env.ctx, space_id, dest, {"enabled": False})
    )
    assert (off.enabled, off.health_reason) == (False, "token expired")
    assert env.heard.calls == []
    on = env.run(
        destinations.update_destination(OPERATOR, env.ctx, space_id, dest, {"enabled": True})
    )
    assert (on.enabled, on.health_reason) == (True, None)
    assert env.heard.calls == [("deliveries_due", None)]


def test_a_new_access_token_clears_the_unhealthy_flag(env: Env) -> None:
    space_id = env.space().space.id
    dest = _add(env, space_id, PIXEL)
    _unhealthy(env, space_id, dest)
    fixed = env.run(
        destinations.update_destination(
            OPERATOR, env.ctx, space_id, dest, {"access_token": " EAAB-new "}
        )
    )
    assert (fixed.secret, fixed.health_reason) == ("EAAB-new", None)
    assert env.heard.calls == [("deliveries_due", None)]


def test_only_a_pixel_has_an_access_token(env: Env) -> None:
    space_id = env.space().space.id
    hook = _add(env, space_id, {"kind": "webhook", "url": f"https://{PUBLIC_HOST}/h"})
    for token in ("EAAB", 5, "  "):
        with pytest.raises(Invalid) as refused:
            env.run(
                destinations.update_destination(
                    OPERATOR, env.ctx, space_id, hook, {"access_token": token}
                )
            )
        assert refused.value.field == "access_token"


def test_an_event_map_change_is_merged_into_the_current_map(env: Env) -> None:
    space_id = env.space().space.id
    dest = _add(env, space_id, PIXEL)
    updated = env.run(
        destinations.update_destination(
            OPERATOR, env.ctx, space_id, dest, {"event_map": {"deposit": "Deposit", "contact": ""}}
        )
    )
    assert updated.event_map == {
        "contact": "",
        "subscribed": "Lead",
        "registration": "CompleteRegistration",
        "deposit": "Deposit",
        "deposit.reversed": "",
    }
    with pytest.raises(Invalid) as refused:
        env.run(
            destinations.update_destination(
                OPERATOR, env.ctx, space_id, dest, {"event_map": {"refund": "Refund"}}
            )
        )
    assert refused.value.field == "event_map"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "webhook"}, "kind"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"enabled": "yes"}, "enabled"),
        ({"proxy": "socks5://p:1"}, "proxy"),
    ],
)
def test_a_bad_change_is_refused_and_changes_nothing(
    env: Env, changes: dict[str, Any], field: str
) -> None:
    space_id = env.space().space.id
    dest = _add(env, space_id, PIXEL)
    before = env.run(destinations.list_destinations(OPERATOR, env.ctx, space_id))
    with pytest.raises(Invalid) as refused:
        env.run(destinations.update_destination(OPERATOR, env.ctx, space_id, dest, changes))
    assert refused.value.field == field
    assert env.run(destinations.list_destinations(OPERATOR, env.ctx, space_id)) == before


def test_another_spaces_destination_is_not_found(env: Env) -> None:
    mine, theirs = env.space("mine").space.id, env.space("theirs").space.id
    dest = _add(env, theirs, PIXEL)
    with pytest.raises(NotFound) as missing:
        env.run(destinations.update_destination(OPERATOR, env.ctx, mine, dest, {"name": "x"}))
    assert missing.value.detail == f"no destination {dest} in space {mine}"
    with pytest.raises(NotFound):
        env.run(destinations.test_destination(OPERATOR, env.ctx, mine, dest))
    assert env.run(destinations.destination_space(OPERATOR, env.ctx, dest)) == theirs
    with pytest.raises(NotFound):
        env.run(destinations.destination_space(OPERATOR, env.ctx, dest + 1))


def test_a_pixels_test_needs_a_test_event_code_or_live(env: Env) -> None:
    space_id = env.space().space.id
    dest = _add(env, space_id, PIXEL)
    with pytest.raises(Invalid) as refused:
        env.run(destinations.test_destination(OPERATOR, env.ctx, space_id, dest))
    assert refused.value.field == "test_event_code" and "real purchase" in refused.value.detail


def test_the_outbox_takes_only_its_statuses(env: Env) -> None:
    space_id = env.space().space.id
    for call in (
        deliveries.list_deliveries(OPERATOR, env.ctx, space_id, status="lost"),
        deliveries.replay(OPERATOR, env.ctx, space_id, status="lost"),
    ):
        with pytest.raises(Invalid) as refused:
            env.run(call)
        assert refused.value.field == "status"
    assert env.run(deliveries.replay(OPERATOR, env.ctx, space_id, status="retrying")) == 0
    assert env.run(deliveries.delivery_counts(OPERATOR, env.ctx, space_id)) == {}
    assert env.heard.calls == []  # nothing replayed: the worker is not woken
