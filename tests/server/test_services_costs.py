"""The cost and rate services' rules (services/costs.py), for every front end at once: what a
cost must hold, all or none, who may write and read, and the report's whole days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.server.services_env import Env, services
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.services import (
    OPERATOR,
    Forbidden,
    Invalid,
    NotFound,
    SpaceCredential,
    currencies,
    links,
)
from xtracker_server.services import costs as service

DAY = "2026-11-01"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with services(tmp_path) as found:
        yield found


def _cost(**changes: Any) -> dict[str, Any]:
    return {"day": DAY, "level": "campaign", "id": "120", "amount": "12.50", "currency": "USD",
            **changes}  # fmt: skip


def _listed(env: Env, space_id: int) -> list[Any]:
    return env.run(service.list_costs(OPERATOR, env.ctx, space_id))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"day": "2026-13-01"}, "day"),
        ({"level": "account"}, "level"),
        ({"id": " "}, "id"),
        ({"amount": "1,5"}, "amount"),
        ({"amount": "-2"}, "amount"),
        ({"currency": "EURO1"}, "currency"),
        ({"cost": "12"}, "cost"),
        ({"level": "link", "id": "no-such-link"}, "id"),
    ],
)
def test_a_bad_cost_is_refused_by_field(env: Env, changes: dict[str, Any], field: str) -> None:
    space_id = env.space().space.id
    with pytest.raises(Invalid) as refused:
        env.run(service.set_costs(OPERATOR, env.ctx, space_id, [_cost(**changes)]))
    assert refused.value.field == field
    assert _listed(env, space_id) == []


def test_one_bad_cost_stores_none_of_the_call(env: Env) -> None:
    space_id = env.space().space.id
    items = [_cost(id="1"), _cost(id="2"), _cost(id="3", amount="x")]
    with pytest.raises(Invalid) as refused:
        env.run(service.set_costs(OPERATOR, env.ctx, space_id, items))
    assert refused.value.field == "costs[2].amount"
    assert _listed(env, space_id) == []


def test_the_same_cost_twice_in_one_call_is_refused(env: Env) -> None:
    space_id = env.space().space.id
    with pytest.raises(Invalid, match="twice"):
        env.run(service.set_costs(OPERATOR, env.ctx, space_id, [_cost(), _cost(amount="1")]))


def test_a_spaces_own_currency_and_a_link_level_cost(env: Env) -> None:
    space_id = env.space().space.id
    env.run(currencies.set_currencies(OPERATOR, env.ctx, space_id, ["GEMS"]))
    env.run(links.create_link(OPERATOR, env.ctx, space_id, {"slug": "promo", "kind": "bot",
                                                             "target": "promo_bot"}))  # fmt: skip
    items = [_cost(currency="gems"), _cost(level="link", id="promo", amount="3")]
    assert env.run(service.set_costs(OPERATOR, env.ctx, space_id, items)) == service.Stored(2, 0)
    assert [(c.level.value, c.currency) for c in _listed(env, space_id)] == [
        ("campaign", "GEMS"),
        ("link", "USD"),
    ]


def test_a_space_credential_reads_its_costs_but_never_writes_them(env: Env) -> None:
    a, b = env.space("a").space.id, env.space("b").space.id
    env.run(service.set_costs(OPERATOR, env.ctx, a, [_cost()]))
    own = SpaceCredential(a, CredentialKind.BEARER)
    assert len(env.run(service.list_costs(own, env.ctx, a))) == 1
    with pytest.raises(Forbidden):
        env.run(service.set_costs(own, env.ctx, a, [_cost()]))
    with pytest.raises(Forbidden):
        env.run(service.list_costs(own, env.ctx, b))
    with pytest.raises(Forbidden):
        env.run(service.rates(own, env.ctx, b))


def test_deleting_a_cost_that_is_not_there_is_not_found(env: Env) -> None:
    space_id = env.space().space.id
    env.run(service.set_costs(OPERATOR, env.ctx, space_id, [_cost()]))
    env.run(service.delete_cost(OPERATOR, env.ctx, space_id, day=DAY, level="campaign",
                                object_id="120"))  # fmt: skip
    with pytest.raises(NotFound, match="no cost of campaign 120"):
        env.run(service.delete_cost(OPERATOR, env.ctx, space_id, day=DAY, level="campaign",
                                    object_id="120"))  # fmt: skip


def test_a_rate_is_checked(env: Env) -> None:
    space_id = env.space().space.id
    rate = env.run(service.set_rate(OPERATOR, env.ctx, space_id, base="eur", quote="usd",
                                    day=DAY, rate="1.0832"))  # fmt: skip
    assert (rate.base, rate.quote, rate.day, rate.rate) == ("EUR", "USD", date(2026, 11, 1),
                                                           Decimal("1.0832"))  # fmt: skip
    for base, quote, day, value, field in [
        ("EUR", "EUR", DAY, "1", "to"),
        ("EUR", "USD", "1/11/2026", "1", "day"),
        ("EUR", "USD", DAY, "0", "rate"),
        ("EUR", "NOPE1", DAY, "1", "to"),
    ]:
        with pytest.raises(Invalid) as refused:
            env.run(service.set_rate(OPERATOR, env.ctx, space_id, base=base, quote=quote,
                                     day=day, rate=value))  # fmt: skip
        assert refused.value.field == field


def test_the_report_covers_the_whole_days_the_window_touches(env: Env) -> None:
    space_id = env.space().space.id
    env.run(service.set_costs(OPERATOR, env.ctx, space_id, [
        _cost(day="2026-10-31", amount="1"), _cost(day="2026-11-01", amount="2"),
        _cost(day="2026-11-02", amount="4"), _cost(day="2026-11-03", amount="8"),
    ]))  # fmt: skip
    window: dict[str, Any] = {"from_": "2026-11-01T12:00", "to": "2026-11-02T06:00"}
    data = env.run(service.costs_report(OPERATOR, env.ctx, space_id, currency="USD", **window))
    assert (data["from_day"], data["to_day"]) == ("2026-11-01", "2026-11-03")
    assert data["total"]["cost"] == "6"
    in_tokyo: dict[str, Any] = {"from_": "2026-11-03", "to": "2026-11-04", "tz": "Asia/Tokyo"}
    tokyo = env.run(service.costs_report(OPERATOR, env.ctx, space_id, currency="USD", **in_tokyo))
    assert (tokyo["tz"], tokyo["total"]["cost"]) == ("Asia/Tokyo", "8")
    with pytest.raises(Invalid) as refused:
        env.run(service.costs_report(OPERATOR, env.ctx, space_id, currency="USD", level="team"))
    assert refused.value.field == "level"
