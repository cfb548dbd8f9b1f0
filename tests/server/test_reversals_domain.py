"""Reversals in the pure domain (issue 17 §4): postback statuses, event maps, the S2S
``{status}`` macro, the webhook body, net revenue and sorting by it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from xtracker_server.domain.destinations import (
    DEFAULT_EVENT_MAPS,
    DestinationInput,
    DestinationKind,
    default_event_map,
)
from xtracker_server.domain.outbound import ClickInfo, DeliveryContext
from xtracker_server.domain.postbacks import (
    PostbackProblem,
    check_status_alias,
    check_status_name,
    effective_aliases,
    read_postback,
)
from xtracker_server.domain.reports import LinkRow, net_revenue, sort_links
from xtracker_server.domain.s2s import expand, unknown_macros
from xtracker_server.domain.webhook import webhook_body
from xtracker_server.store.sqlite.outbox import Route, deliveries_for

DEFAULTS = effective_aliases([])
DEPOSIT = DeliveryContext(
    event_id="xt_1", event_name="deposit", canonical="deposit", occurred_at_ms=1_700_000_000_000,
    uid="u1", tg_id=None, eid="tx-1", value="25.00", currency="USD",
    click=ClickInfo(uid="u1", link="promo"),
)  # fmt: skip
REVERSAL = replace(
    DEPOSIT, event_name="deposit.reversed", canonical="deposit.reversed", value=None, currency=None
)


@pytest.mark.parametrize("status", ["rejected", "Chargeback", "REVERSED", "refund"])
def test_reversal_statuses_name_the_deposit_by_its_eid(status: str) -> None:
    read = read_postback({"subid": "u1", "status": status, "tid": "tx-1", "payout": "9"}, DEFAULTS)
    assert not read.ignored
    # a single-URL network's amount macro is not the reversal's: the deposit's amount counts
    assert read.data == {"event": "deposit.reversed", "uid": "u1", "eid": "tx-1"}
    assert read.status == status


def test_a_status_may_map_to_a_reversal_but_not_be_named_like_one() -> None:
    assert check_status_alias("Storno", "Deposit.Reversed") == ("storno", "deposit.reversed")
    with pytest.raises(ValueError, match="canonical"):
        check_status_name("deposit.reversed")
    aliases = effective_aliases([])
    read = read_postback({"uid": "u", "event": "deposit.reversed", "eid": "e"}, aliases)
    assert read.data["event"] == "deposit.reversed"
    with pytest.raises(PostbackProblem) as unknown:
        read_postback({"uid": "u", "status": "cashback"}, aliases)
    assert "deposit.reversed" in unknown.value.problem


def test_event_maps_send_reversals_where_they_can_be_told_from_conversions() -> None:
    assert DEFAULT_EVENT_MAPS[DestinationKind.WEBHOOK]["deposit.reversed"] == "deposit.reversed"
    assert DEFAULT_EVENT_MAPS[DestinationKind.FB_CAPI]["deposit.reversed"] == ""
    s2s = DestinationKind.S2S_POSTBACK
    for template, sent in [
        ("https://n.example/pb?cid={uid}&status={status}", True),
        ("https://n.example/pb?cid={uid}&goal={event}", True),
        ("https://n.example/pb?cid={uid}&goal={canonical}", True),
        ("https://n.example/pb?cid={uid}&sum={value}", False),
    ]:
        want = "deposit.reversed" if sent else ""
        assert default_event_map(s2s, {"url_template": template})["deposit.reversed"] == want
        inp = DestinationInput(kind=s2s, url_template=template)
        assert inp.full_event_map()["deposit.reversed"] == want
    # the operator may still choose
    chosen = DestinationInput(kind=s2s, url_template="https://n.example/pb?cid={uid}",
                              event_map={"deposit.reversed": "refund"})  # fmt: skip
    assert chosen.full_event_map()["deposit.reversed"] == "refund"


def test_the_fan_out_follows_the_reversal_row() -> None:
    routes = [
        Route(1, DEFAULT_EVENT_MAPS[DestinationKind.WEBHOOK]),
        Route(2, DEFAULT_EVENT_MAPS[DestinationKind.FB_CAPI]),
        Route(3, {"deposit": "ftd"}),  # a map stored before reversals: none sent
    ]
    rows = deliveries_for(routes, 1, 10, b"k", "deposit.reversed", 0)
    assert [(r[1], r[4]) for r in rows] == [(1, "deposit.reversed")]


def test_the_status_macro_tells_a_reversal_from_a_conversion() -> None:
    template = "https://n.example/pb?cid={uid}&status={status}&tid={eid}&sum={value}"
    assert unknown_macros(template) == set()
    assert (
        expand(template, DEPOSIT)
        == "https://n.example/pb?cid=u1&status=approved&tid=tx-1&sum=25.00"
    )
    assert expand(template, REVERSAL) == "https://n.example/pb?cid=u1&status=rejected&tid=tx-1&sum="


def test_the_webhook_body_of_a_reversal_names_the_deposit_and_carries_no_amount() -> None:
    body = webhook_body(REVERSAL)
    assert (body["event"], body["canonical"], body["eid"]) == (
        "deposit.reversed", "deposit.reversed", "tx-1"
    )  # fmt: skip
    assert body["data"] == {} and body["click"]["uid"] == "u1"


def test_net_revenue_is_exact_per_currency() -> None:
    gross = {"USD": Decimal("0.30"), "EUR": Decimal("10")}
    taken = {"USD": Decimal("0.1")}
    assert net_revenue(gross, taken) == {"USD": Decimal("0.20"), "EUR": Decimal("10")}
    assert str(net_revenue(gross, taken)["USD"]) == "0.20"


def test_links_sort_by_net_and_reversed_revenue() -> None:
    def row(slug: str, gross: str, taken: str | None) -> LinkRow:
        back = {"USD": Decimal(taken)} if taken else {}
        return LinkRow(slug, 10, {}, 2, {"USD": Decimal(gross)}, {}, len(back), back)

    rows = [row("a", "100", "90"), row("b", "50", None), row("c", "80", "20")]
    by_net = sort_links(rows, "net_revenue", desc=True, currency="USD")
    assert [r.link for r in by_net] == ["c", "b", "a"]  # 60, 50, 10
    by_gross = sort_links(rows, "revenue", desc=True, currency="USD")
    assert [r.link for r in by_gross] == ["a", "c", "b"]
    by_taken = sort_links(rows, "reversed_revenue", desc=True, currency="USD")
    assert [r.link for r in by_taken] == ["a", "c", "b"]
    assert [r.link for r in sort_links(rows, "reversed_deposits", desc=False, currency="USD")] == [
        "b", "a", "c"
    ]  # fmt: skip
