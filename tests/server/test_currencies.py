"""Which currency codes a space's events may carry (domain/currencies.py)."""

from __future__ import annotations

import pytest

from xtracker_server.domain.currencies import (
    CRYPTO_TICKERS,
    ISO_4217,
    MAX_ALLOWED,
    check_allowed,
    currency_problem,
)


def test_the_iso_list_is_the_maintained_one() -> None:
    assert {"USD", "EUR", "JPY", "VND", "IDR", "VES", "ZWG"} <= ISO_4217
    assert "HRK" not in ISO_4217  # replaced by the euro in 2023: gone from the table
    assert all(len(code) == 3 and code.isalpha() and code.isupper() for code in ISO_4217)


def test_crypto_tickers_are_not_iso_codes() -> None:
    assert {"BTC", "ETH", "USDT", "USDC", "TON"} <= set(CRYPTO_TICKERS)
    assert not set(CRYPTO_TICKERS) & ISO_4217


def test_a_code_is_accepted_when_iso_crypto_or_the_spaces_own() -> None:
    assert currency_problem("EUR", ()) is None
    assert currency_problem("USDT", ()) is None
    assert currency_problem("GEMS", ("GEMS",)) is None
    problem = currency_problem("GEMS", ("ABC",))
    assert problem is not None
    assert "GEMS" in problem and "ISO 4217" in problem and "--allow GEMS" in problem


def test_a_spaces_list_is_normalised() -> None:
    assert check_allowed(["gems", " ABC ", "GEMS"]) == ("ABC", "GEMS")
    assert check_allowed([]) == ()


@pytest.mark.parametrize("bad", ["G", "GE MS", "\u00c9UR", "ABCDEFGHIJK", "${cur}"])
def test_a_spaces_list_refuses_what_is_not_a_code(bad: str) -> None:
    with pytest.raises(ValueError, match="currency code"):
        check_allowed(["GEMS", bad])


def test_a_spaces_list_is_bounded() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_ALLOWED}"):
        check_allowed([f"C{n:03d}" for n in range(MAX_ALLOWED + 1)])
