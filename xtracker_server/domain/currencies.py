"""Which currency codes an event may carry: an ISO 4217 code, a common crypto ticker, or a code
on the space's own list. Anything else is a typo or an unfilled macro, and revenue in an unknown
unit cannot be added up, so it is refused.

The wire models check only a code's shape (``xtracker_wire.check_currency``: the client
package carries no currency list); the server checks the code against this module.

    >>> currency_problem("EUR", ()) is None, currency_problem("USDT", ()) is None
    (True, True)
    >>> currency_problem("ABC", ("ABC",)) is None
    True
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType

import iso4217

from xtracker_wire import check_currency

#: Every alphabetic code of the ISO 4217 list (the maintainers' copy of the table SIX
#: publishes; the ``iso4217`` package version is the table's publication date).
ISO_4217: frozenset[str] = frozenset(c.code for c in iso4217.Currency)

#: Crypto assets accepted in every space, by ticker: the coins and stablecoins deposits are
#: commonly paid in (Telegram's TON and its ecosystem included). Docs: docs/api.md#currency.
CRYPTO_TICKERS: Mapping[str, str] = MappingProxyType(
    {
        "BTC": "Bitcoin",
        "ETH": "Ether",
        "USDT": "Tether",
        "USDC": "USD Coin",
        "TON": "Toncoin",
        "BNB": "BNB",
        "SOL": "Solana",
        "TRX": "TRON",
        "XRP": "XRP",
        "LTC": "Litecoin",
        "DOGE": "Dogecoin",
        "DAI": "Dai",
        "ADA": "Cardano",
        "POL": "Polygon (formerly MATIC)",
        "AVAX": "Avalanche",
        "DOT": "Polkadot",
        "BCH": "Bitcoin Cash",
        "XMR": "Monero",
        "NOT": "Notcoin",
    }
)

#: How many codes a space's own list may hold.
MAX_ALLOWED = 50


def is_known(code: str) -> bool:
    """An ISO 4217 code or a listed crypto ticker (upper case): accepted in every space."""
    return code in ISO_4217 or code in CRYPTO_TICKERS


def currency_problem(code: str, allowed: Collection[str]) -> str | None:
    """Why ``code`` (shape-checked, upper case) is refused in a space whose own list is
    ``allowed``; None when it is accepted."""
    if is_known(code) or code in allowed:
        return None
    return (
        f"{code} is neither an ISO 4217 code (USD, EUR ...), nor a common crypto ticker (BTC,"
        f" USDT, TON ... listed in docs/api.md), nor on this space's own list: fix the code, or"
        f" add it to the list (xtracker space currencies --space ID --allow {code})"
    )


def check_allowed(codes: Iterable[str]) -> tuple[str, ...]:
    """A space's own list, normalised (upper case, sorted, each once); ``ValueError`` names
    the first code that is not shaped like one, or a list that is too long."""
    checked: set[str] = set()
    for raw in codes:
        try:
            checked.add(check_currency(raw))
        except ValueError as exc:
            raise ValueError(f"{str(raw)[:20]!r} {exc}") from None
    if len(checked) > MAX_ALLOWED:
        raise ValueError(f"holds {len(checked)} codes; at most {MAX_ALLOWED}")
    return tuple(sorted(checked))
