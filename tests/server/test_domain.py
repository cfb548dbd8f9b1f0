"""Pure domain functions: dedup keys, credentials, query parsing, clicks."""

from __future__ import annotations

import hashlib

from xtracker_server.domain.clicks import fbc_from_fbclid, fields_from_query, new_uid
from xtracker_server.domain.credentials import CredentialKind, hash_secret, mask, new_secret
from xtracker_server.domain.dedup import AmountConflict, amount_conflict, dedup_key
from xtracker_server.domain.query import parse_query, whole_number


def test_dedup_key_uses_eid_when_given_else_the_timestamp() -> None:
    with_eid = dedup_key(1, "abc", None, "deposit", "tx-1", 111)
    assert with_eid == dedup_key(1, "abc", None, "deposit", "tx-1", 222)
    assert dedup_key(1, "abc", None, "deposit", None, 111) != dedup_key(
        1, "abc", None, "deposit", None, 222
    )
    expected = hashlib.sha256(b"1|3:abc|deposit|4:tx-1").digest()
    assert with_eid == expected


def test_dedup_key_differs_per_space_uid_and_event() -> None:
    base = dedup_key(1, "abc", None, "deposit", "e", 0)
    assert base != dedup_key(2, "abc", None, "deposit", "e", 0)
    assert base != dedup_key(1, "abd", None, "deposit", "e", 0)
    assert base != dedup_key(1, "abc", None, "contact", "e", 0)


def test_a_test_event_has_a_dedup_namespace_of_its_own() -> None:
    real = dedup_key(1, "abc", None, "deposit", "tx-1", 0)
    test = dedup_key(1, "abc", None, "deposit", "tx-1", 0, test=True)
    assert test != real
    assert test == hashlib.sha256(b"test|1|3:abc|deposit|4:tx-1").digest()  # docs/api.md
    # no uid or eid can forge a test key: the real keys start with the space id
    assert test != dedup_key(1, "test|1|3:abc", None, "deposit", "tx-1", 0)


def test_dedup_key_parts_cannot_run_into_each_other() -> None:
    assert dedup_key(1, "x|contact|y", None, "deposit", "z", 0) != dedup_key(
        1, "x", None, "contact", "y|deposit|z", 0
    )


def test_dedup_key_of_a_tg_id_event_does_not_depend_on_attribution() -> None:
    assert dedup_key(1, None, 42, "contact", "c", 0) != dedup_key(1, None, 43, "contact", "c", 0)
    assert dedup_key(1, None, 42, "contact", "c", 0) != dedup_key(1, None, None, "contact", "c", 0)


def test_a_repeat_with_the_same_amount_agrees() -> None:
    assert amount_conflict("25.50", "USD", "25.50", "USD") is None
    assert amount_conflict("25.50", "USD", "25.5", "USD") is None  # the same number
    assert amount_conflict("25.50", "USD", None, None) is None  # claims no amount
    assert amount_conflict(None, None, None, None) is None


def test_a_repeat_with_another_amount_or_currency_conflicts() -> None:
    assert amount_conflict("25.50", "USD", "30", "USD") == AmountConflict(
        "25.50", "USD", "30", "USD"
    )
    assert amount_conflict("25.50", "USD", "25.50", "EUR") == AmountConflict(
        "25.50", "USD", "25.50", "EUR"
    )
    conflict = amount_conflict(None, None, "10", "USD")  # stored without an amount
    assert conflict == AmountConflict(None, None, "10", "USD")
    assert conflict is not None
    assert "stored with no amount" in conflict.message and "10 USD" in conflict.message


def test_secrets_are_prefixed_random_and_hashed() -> None:
    a, b = new_secret(CredentialKind.BEARER), new_secret(CredentialKind.BEARER)
    assert a.startswith("xt_sk_") and a != b
    assert new_secret(CredentialKind.INGEST).startswith("xt_it_")
    assert hash_secret(a) == hashlib.sha256(a.encode()).digest()
    assert mask(a) == f"xt_sk_…{a[-4:]}" and a[6:-4] not in mask(a)


def test_query_parsing_is_tolerant() -> None:
    assert parse_query("a=1&b=&c=3") == {"a": "1", "c": "3"}
    assert parse_query("?event=reg?sub=1&x=2") == {"event": "reg", "sub": "1", "x": "2"}
    assert parse_query("a=&a=2&a=3") == {"a": "2"}
    assert parse_query("name=%D0%BA%D0%BB%D0%B8%D0%BA+1") == {"name": "клик 1"}


def test_whole_numbers_are_one_to_eighteen_ascii_digits() -> None:
    assert whole_number("0") == 0
    assert whole_number("9" * 18) == 10**18 - 1
    for text in ("", "\u00b2", "\u0663", "\uff11", "9" * 19, "1_0", "-1", " 1", "1e3", None):
        assert whole_number(text) is None, text


def test_fbc_keeps_fbclid_unaltered() -> None:
    assert fbc_from_fbclid("IwAR_AbC-1", 1700000000123) == "fb.1.1700000000123.IwAR_AbC-1"


def test_campaign_fields_come_from_the_query() -> None:
    fbclid, fields = fields_from_query("fbclid=F&campaign_id=9&utm_medium=cpc&other=1")
    assert fbclid == "F"
    assert fields == {"campaign_id": "9", "utm_medium": "cpc"}


def test_uids_are_url_safe_and_short() -> None:
    uid = new_uid()
    assert len(uid) == 16 and all(c.isalnum() or c in "-_" for c in uid)
