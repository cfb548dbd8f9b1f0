"""The pure rules of deleting and erasing (domain/deletion.py)."""

from __future__ import annotations

import pytest

from xtracker_server.domain.deletion import (
    Person,
    check_tg_id,
    check_uid,
    counts,
    delivery_counts,
    log_needles,
    log_row_names,
)


def test_a_person_is_a_uid_or_a_telegram_user_not_both() -> None:
    assert str(Person(uid="abc")) == "uid abc"
    assert str(Person(tg_id=7)) == "tg_id 7"
    with pytest.raises(ValueError):
        Person()
    with pytest.raises(ValueError):
        Person(uid="abc", tg_id=7)


@pytest.mark.parametrize("raw", ["", "   ", None, 12, "x" * 129, "a\nb"])
def test_a_bad_uid_is_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        check_uid(raw)


def test_a_uid_is_trimmed_and_a_tg_id_taken_as_the_events_take_it() -> None:
    assert check_uid("  abc ") == "abc"
    assert check_tg_id(555) == check_tg_id("555") == 555
    for raw in (True, 0, -5, "five", 2**60, 1.5):
        with pytest.raises(ValueError):
            check_tg_id(raw)


@pytest.mark.parametrize(
    ("query", "body", "named"),
    [
        ("token=xt_it_…&uid=u1&status=ftd", None, True),
        ("token=xt_it_…&sub1=u1", None, True),  # under an alias
        ("token=xt_it_…&uid=u10", None, False),  # another uid that starts the same
        ("token=xt_it_…&uid=xu1", None, False),
        ("token=xt_it_…&uid=a%2Fb", None, True),  # URL-encoded: the uid "a/b"
        ("token=xt_it_…", '{"click_id": "u1", "amount": 5}', True),
        ("token=xt_it_…", '{"data": {"ids": ["u1"]}}', True),
        ("token=xt_it_…", '{"click_id": "u1", "note": "cut he', True),  # a log keeps 2,048 chars
        ("token=xt_it_…", "click_id=u1&amount=5", True),  # a form body
        ("token=xt_it_…&tg_id=777", None, True),
        ("token=xt_it_…&tg_id=7770", None, False),
        ("token=xt_it_…", '{"user": 777}', True),
        ("token=xt_it_…", '{"user": 777.5, "v": "1777"}', False),
        ("token=xt_it_…&uid=u2&status=reg", None, False),
    ],
)
def test_a_log_row_names_the_person_by_whole_values(
    query: str, body: str | None, named: bool
) -> None:
    assert log_row_names(None, query, body, ["u1", "a/b"], 777) is named


def test_a_log_row_with_the_uid_in_its_column_names_them() -> None:
    assert log_row_names("u1", "token=…", None, ["u1"], None)
    assert not log_row_names("u2", "token=…", None, ["u1"], None)


def test_the_needles_find_every_form_a_log_row_may_hold() -> None:
    assert log_needles(["a/b"], 777) == ["777", "a%2Fb", "a/b"]
    assert log_needles([], None) == []


def test_deliveries_are_counted_as_pending_sent_or_failed() -> None:
    found = delivery_counts(["pending", "retrying", "sent", "failed_permanently", "sent"])
    assert found == {"deliveries_pending": 2, "deliveries_sent": 2, "deliveries_failed": 1}
    assert counts(("deliveries_sent", "clicks"), found, {"clicks": 3}) == {
        "deliveries_sent": 2,
        "clicks": 3,
    }
