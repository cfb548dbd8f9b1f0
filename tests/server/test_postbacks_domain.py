"""Reading postbacks (aliases, ambiguity, masking) and building network URLs: pure functions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from xtracker_server.domain.postback_urls import TOKEN_PLACEHOLDER, postback_urls
from xtracker_server.domain.postbacks import (
    AliasRow,
    PostbackProblem,
    check_param_alias,
    check_status_alias,
    effective_aliases,
    mask_token,
    read_postback,
)
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.migrations import MIGRATIONS
from xtracker_server.store.sqlite.postbacks import LogEntry, list_log, log_postback, prune_log

DEFAULTS = effective_aliases([])
TOKEN = "xt_it_Secret0123456789abcdefghijWXYZ"


@pytest.mark.parametrize(
    ("status", "event"),
    [("reg", "registration"), ("LEAD", "registration"), (" Ftd ", "deposit"),
     ("dep", "deposit"), ("sale", "deposit"), ("redeposit", "deposit"), ("join", "subscribed"),
     ("Deposit", "deposit")],
)  # fmt: skip
def test_default_status_aliases_map_to_canonical_events(status: str, event: str) -> None:
    read = read_postback({"event": status, "uid": "u"}, DEFAULTS)
    assert not read.ignored and read.data["event"] == event
    assert read.status == status.strip()


@pytest.mark.parametrize("status", ["conf", "withdrawal", "commission", "ping", "TEST"])
def test_non_funnel_statuses_are_ignored(status: str) -> None:
    assert read_postback({"status": status, "uid": "u"}, DEFAULTS).ignored


def test_unknown_status_is_a_problem_listing_what_is_accepted() -> None:
    with pytest.raises(PostbackProblem) as info:
        read_postback({"status": "cashback", "uid": "u"}, DEFAULTS)
    assert info.value.field == "status"  # named as the network sent it
    assert "cashback" in info.value.problem
    assert "registration" in info.value.problem and "ftd" in info.value.problem
    assert "deposit.reversed" in info.value.problem and "chargeback" in info.value.problem
    assert "ignored: " in info.value.problem and "withdrawal" in info.value.problem


def test_parameter_aliases_fill_our_fields() -> None:
    read = read_postback(
        {"click_id": "c1", "sumdep": "25.50", "trade_id": "t-9", "status": "ftd"}, DEFAULTS
    )
    assert read.data == {"event": "deposit", "uid": "c1", "value": "25.50", "eid": "t-9"}
    assert read.renames == {"event": "status", "uid": "click_id", "value": "sumdep",
                            "eid": "trade_id"}  # fmt: skip


def test_our_own_name_wins_over_an_alias() -> None:
    read = read_postback({"uid": "ours", "click_id": "theirs", "event": "reg"}, DEFAULTS)
    assert read.data["uid"] == "ours"


def test_aliases_that_disagree_are_refused_naming_both() -> None:
    with pytest.raises(PostbackProblem) as info:
        read_postback({"click_id": "a", "subid": "b", "event": "reg"}, DEFAULTS)
    assert info.value.field == "uid"
    assert "click_id='a'" in info.value.problem and "subid='b'" in info.value.problem


def test_aliases_that_agree_are_fine_and_empty_ones_do_not_count() -> None:
    read = read_postback({"click_id": "a", "sub1": "a", "subid": "", "event": "reg"}, DEFAULTS)
    assert read.data["uid"] == "a"


def test_an_amount_on_a_status_without_money_is_dropped() -> None:
    # One URL for every status: the network fills sumdep on a registration too.
    read = read_postback({"status": "reg", "cid": "u", "sumdep": "0"}, DEFAULTS)
    assert "value" not in read.data
    assert "value" not in read_postback({"event": "reg", "uid": "u", "value": "0"}, DEFAULTS).data
    # Our own value= with an amount stays: the event answer warns that it is not kept.
    kept = read_postback({"event": "contact", "uid": "u", "value": "3"}, DEFAULTS)
    assert kept.data["value"] == "3"


def test_t_becomes_occurred_at_ms_and_errors_name_it_t() -> None:
    read = read_postback({"event": "reg", "t": "1700000000000"}, DEFAULTS)
    assert read.data["occurred_at_ms"] == "1700000000000"
    assert read.renames == {"occurred_at_ms": "t"}


def test_a_space_can_add_change_and_remove_aliases() -> None:
    aliases = effective_aliases(
        [
            AliasRow("status", "qualified", "registration"),
            AliasRow("status", "dep", "ignore"),
            AliasRow("status", "lead", None),
            AliasRow("param", "player", "uid"),
            AliasRow("param", "sum", None),
        ]
    )
    assert read_postback({"event": "qualified"}, aliases).data["event"] == "registration"
    assert read_postback({"event": "dep"}, aliases).ignored
    with pytest.raises(PostbackProblem):
        read_postback({"event": "lead"}, aliases)
    read = read_postback({"event": "ftd", "player": "p", "sum": "9"}, aliases)
    assert read.data == {"event": "deposit", "uid": "p"}
    assert aliases.origins[("status", "lead")] == "removed"
    assert aliases.origins[("status", "qualified")] == "custom"
    assert aliases.origins[("status", "reg")] == "default"


def test_alias_names_and_targets_are_checked() -> None:
    assert check_status_alias(" QUALIFIED ", "Registration") == ("qualified", "registration")
    assert check_status_alias("refund", "ignore") == ("refund", "ignore")
    for alias, target in [("deposit", "registration"), ("x", "purchase"), ("a b", "deposit")]:
        with pytest.raises(ValueError):
            check_status_alias(alias, target)
    assert check_param_alias("ClickId", "uid") == ("clickid", "uid")
    for name, field in [("token", "uid"), ("uid", "eid"), ("cid", "campaign")]:
        with pytest.raises(ValueError):
            check_param_alias(name, field)


def test_the_token_is_masked_wherever_it_appears() -> None:
    query = f"token={TOKEN}&uid=a&token=xt_it_another-token-value&x=1"
    masked = mask_token(query, TOKEN)
    assert TOKEN not in masked and "xt_it_another-token-value" not in masked
    assert masked.startswith("token=xt_it_…WXYZ&uid=a&token=xt_it_…alue&")
    body = f'{{"token": "{TOKEN}", "uid": "a"}}'
    assert TOKEN not in mask_token(body, TOKEN)
    assert TOKEN not in mask_token(f'{{"token":"{TOKEN}"}}', None)
    assert mask_token("uid=a", TOKEN) == "uid=a"


def test_pocket_option_urls_carry_the_dedup_recipe() -> None:
    urls = postback_urls("pocketoption", "https://t.example/", TOKEN, "all")
    assert urls.offer_param == "click_id={uid}"
    assert [u.field for u in urls.urls] == ["Registration", "First deposit", "Repeat deposit"]
    reg, ftd, dep = (u.url for u in urls.urls)
    assert reg.startswith(f"https://t.example/e?token={TOKEN}&event=registration&uid={{click_id}}")
    assert reg.endswith("eid=reg-{trader_id}")
    assert "value={sumdep}" in ftd and ftd.endswith("eid=ftd-{trader_id}")
    assert dep.endswith("eid=dep-{trader_id}-{totaldep}")
    deposits = postback_urls("pocketoption", "https://t.example", TOKEN, "deposit")
    assert [u.field for u in deposits.urls] == ["First deposit", "Repeat deposit"]


def test_a_single_url_network_gets_its_one_url_for_any_event() -> None:
    for event in ("registration", "deposit", "all"):
        urls = postback_urls("quotex", "https://t.example", TOKEN_PLACEHOLDER, event)
        assert len(urls.urls) == 1 and "event={status}" in urls.urls[0].url
        assert "token=<INGEST_TOKEN>&" in urls.urls[0].url
    with pytest.raises(ValueError, match="unknown network"):
        postback_urls("binance", "https://t.example", TOKEN)


def test_the_log_is_pruned_in_batches_of_old_rows_only(tmp_path: Path) -> None:
    conn = open_db(str(tmp_path / "p.db"))
    with transaction(conn):
        conn.execute("INSERT INTO spaces (id, name, created_ms) VALUES (1, 's', 0)")
        for at in [*range(1, 26), 1000, 1001]:
            log_postback(conn, LogEntry(space_id=1, at_ms=at, ip=None, method="GET", query="q",
                                        body=None, outcome="ignored"))  # fmt: skip
    with transaction(conn):
        assert prune_log(conn, before_ms=500, limit=10) == 10
        assert prune_log(conn, before_ms=500, limit=10) == 10
        assert prune_log(conn, before_ms=500, limit=10) == 5
        assert prune_log(conn, before_ms=500, limit=10) == 0
    assert [e.at_ms for e in list_log(conn, 1)] == [1001, 1000]
    conn.close()


def test_log_rows_say_whether_the_uid_is_a_known_click(tmp_path: Path) -> None:
    conn = open_db(str(tmp_path / "a.db"))
    conn.row_factory = sqlite3.Row
    with transaction(conn):
        conn.execute("INSERT INTO spaces (id, name, created_ms) VALUES (1, 's', 0)")
        conn.execute(
            "INSERT INTO clicks (space_id, uid, source, created_ms) VALUES (1, 'known', 'api', 0)"
        )
        for uid in ("known", "stranger"):
            log_postback(conn, LogEntry(space_id=1, at_ms=1, ip=None, method="GET", query="q",
                                        body=None, outcome="ignored", uid=uid))  # fmt: skip
    assert {e.uid: e.click_known for e in list_log(conn, 1)} == {"known": True, "stranger": False}
    conn.close()


def test_log_rows_written_before_the_rename_keep_their_click_known(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    rename = next(i for i, m in enumerate(MIGRATIONS) if "TO click_known" in m)
    old = sqlite3.connect(path)
    for script in MIGRATIONS[:rename]:  # a database of the version before the rename
        old.executescript(script)
    old.execute(f"PRAGMA user_version={rename}")
    old.execute("INSERT INTO spaces (id, name, created_ms) VALUES (1, 's', 0)")
    old.execute(
        "INSERT INTO postback_log (space_id, at_ms, method, query, outcome, uid, attributed)"
        " VALUES (1, 1, 'GET', 'q', 'queued', 'known', 1), (1, 2, 'GET', 'q', 'queued', 'x', 0)"
    )
    old.commit()
    old.close()
    conn = open_db(path)
    conn.row_factory = sqlite3.Row
    rows = list_log(conn, 1)
    assert [(e.uid, e.click_known, e.conflict) for e in rows] == [
        ("x", False, None), ("known", True, None)
    ]  # fmt: skip
    conn.close()
