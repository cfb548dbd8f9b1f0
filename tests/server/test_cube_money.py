"""A cube group's money (store/sqlite/cube_money.py): the rows a report read, added up per
currency and local day when first read, exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from xtracker_server.store.sqlite.cube_money import Amounts, MoneyRows
from xtracker_wire import MAX_VALUE_DECIMALS

DAY = 86_400_000


def f(digits: str) -> int:
    """A fraction part as the cube sums it: an integer of MAX_VALUE_DECIMALS digits."""
    return int(digits.ljust(MAX_VALUE_DECIMALS, "0"))


def row(*key: Any, bucket: int | None, currency: str, money: tuple[int, ...]) -> tuple[Any, ...]:
    """A row as cube.py reads it: the group's key, a 0, the bucket (when the segment is not one
    local day), the currency, then the MONEY columns."""
    return (*key, 0, *(() if bucket is None else (bucket,)), currency, *money)


def test_a_groups_money_is_added_up_per_currency_and_day_when_first_read() -> None:
    dates = {0: "2026-01-01", DAY: "2026-01-02"}
    asked: list[int] = []

    def date(bucket: int) -> str:
        asked.append(bucket)
        return dates[bucket]

    rows = MoneyRows(date)
    # by bucket (the currency at 3): 12.50 + 0.125 USD on the 1st, of which 0.125 reversed
    usd = [(1, 12, f("50"), 2, 0, 0, 0, 0), (1, 0, f("125"), 3, 1, 0, f("125"), 3)]
    for money in usd:
        rows.add(None, 3, row("ad1", bucket=0, currency="USD", money=money), 1)
    rows.add(None, 3, row("ad1", bucket=DAY, currency="EUR", money=(2, 40, 0, 0, 0, 0, 0, 0)), 1)
    # a segment that is one local day (the currency at 2), and a row taken away (sign -1)
    five = (1, 5, f("5"), 1, 0, 0, 0, 0)  # 5.5
    rows.add("2026-01-02T00:00:00+00:00", 2, row("ad1", bucket=None, currency="EUR", money=five), 1)
    rows.add(None, 3, row("ad1", bucket=DAY, currency="EUR", money=five), -1)
    gross, reversed_ = Amounts(rows), Amounts(rows, gross=False)
    assert asked == []  # nothing added up until read
    want = {
        "USD": {"2026-01-01": Decimal("12.625")},
        "EUR": {"2026-01-02": Decimal("40.0")},  # a row with one decimal was taken away: shown so
    }
    assert gross == want and want == gross and dict(gross) == want
    assert str(gross["USD"]["2026-01-01"]) == "12.625"  # the most decimals given
    assert reversed_ == {"USD": {"2026-01-01": Decimal("0.125")}}  # only days with any
    assert list(gross) == ["USD", "EUR"] and len(gross) == 2 and repr(gross) == repr(want)
    assert sorted(set(asked)) == [0, DAY]


def test_a_group_whose_rows_cancel_out_has_no_money() -> None:
    rows = MoneyRows(lambda bucket: "2026-01-01")
    money = (1, 3, 0, 0, 0, 0, 0, 0)
    rows.add(None, 3, row("ad1", bucket=0, currency="USD", money=money), 1)
    rows.add(None, 3, row("ad1", bucket=0, currency="USD", money=money), -1)
    assert Amounts(rows) == {} and Amounts(rows, gross=False) == {}
