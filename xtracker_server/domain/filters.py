"""Report filters: ``country=US,CA`` keeps clicks from the US or Canada, ``campaign=-test``
drops the campaign ``test`` (docs/reports.md#filters). Pure parsing and matching; which of
them a report can answer is the report's to say (``ROLLUP_DIMENSIONS``).

A filter is ``DIMENSION=VALUE[,VALUE…]``. Every value of an exclusion starts with ``-``
(``country=-US,-CA``); a filter either keeps or drops, never both. A backslash takes the next
character as it is, so ``campaign=a\\,b`` is the one value ``a,b`` and ``ad_name=\\-x`` keeps
``-x``. Values are compared exactly, but country codes in upper case. One filter per
dimension; different dimensions all apply (AND), the values of one are alternatives (OR).

    >>> parse_filters(["country=us,CA", "campaign=-test"])
    Filters(items=(Filter(dimension='country', values=('US', 'CA'), exclude=False),
                   Filter(dimension='campaign', values=('test',), exclude=True)))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from xtracker_server.domain.devices import DeviceType
from xtracker_server.domain.reports import FunnelCounts
from xtracker_server.exceptions import XTrackerServerError

__all__ = [
    "DIMENSIONS",
    "MAX_FILTERS",
    "MAX_VALUES",
    "ROLLUP_DIMENSIONS",
    "SUB_ID_PREFIX",
    "Filter",
    "FilterError",
    "Filters",
    "add_counts",
    "add_series",
    "parse_filter",
    "parse_filters",
    "subtract_counts",
    "subtract_series",
]

#: Each dimension a filter can name -> the click column it reads (``clicks`` table).
DIMENSIONS: dict[str, str] = {
    "link": "link (its slug)",
    "campaign": "campaign_id",
    "campaign_name": "campaign_name",
    "adset": "adset_id",
    "adset_name": "adset_name",
    "ad": "ad_id",
    "ad_name": "ad_name",
    "placement": "placement",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "country": "country",
    "device": "device",
    "os": "os",
    "browser": "browser",
    "referrer": "referrer_domain",
}
#: A declared sub-id is the dimension ``sub.NAME`` (``sub.creative=v2``).
SUB_ID_PREFIX = "sub."
#: The dimensions the report rollup can answer today: it counts by link only.
ROLLUP_DIMENSIONS: tuple[str, ...] = ("link",)
MAX_FILTERS = 20
MAX_VALUES = 100
_VALUE_MAX = 256
_DEVICES = tuple(d.value for d in DeviceType)


class FilterError(XTrackerServerError, ValueError):
    """A filter that cannot be read; ``problem`` says why and what to write instead."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Filter:
    """Keep the clicks whose ``dimension`` is one of ``values`` (or, with ``exclude``, is none
    of them: a click without a value is kept by an exclusion and dropped by an inclusion)."""

    dimension: str
    values: tuple[str, ...]
    exclude: bool = False

    def matches(self, value: str | None) -> bool:
        return (value in self.values) != self.exclude

    def text(self) -> str:
        """The filter as written (the form ``parse_filter`` reads)."""
        sign = "-" if self.exclude else ""
        return f"{self.dimension}=" + ",".join(sign + _escaped(v) for v in self.values)


@dataclass(frozen=True)
class Filters:
    items: tuple[Filter, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items)

    def of(self, dimension: str) -> Filter | None:
        return next((f for f in self.items if f.dimension == dimension), None)

    def beyond(self, dimensions: Iterable[str]) -> tuple[Filter, ...]:
        """The filters on a dimension not in ``dimensions`` (what a report cannot answer)."""
        known = set(dimensions)
        return tuple(f for f in self.items if f.dimension not in known)

    def texts(self) -> list[str]:
        return [f.text() for f in self.items]


def parse_filters(raw: Iterable[str], *, sub_ids: Iterable[str] = ()) -> Filters:
    """Every filter of ``raw`` (``["country=US,CA", "campaign=-test"]``); ``sub_ids``: the
    sub-id parameters the space declares (``sub.NAME`` names one of them). FilterError for
    the first that cannot be read, or for a dimension given twice."""
    declared = tuple(sub_ids)
    items: list[Filter] = []
    for text in raw:
        found = parse_filter(text, sub_ids=declared)
        if any(f.dimension == found.dimension for f in items):
            raise FilterError(
                f"{found.dimension}: filtered twice; give its values in one filter"
                f" ({found.dimension}=A,B)"
            )
        items.append(found)
    if len(items) > MAX_FILTERS:
        raise FilterError(f"at most {MAX_FILTERS} filters")
    return Filters(tuple(items))


def parse_filter(text: str, *, sub_ids: Iterable[str] = ()) -> Filter:
    """One filter, ``DIMENSION=VALUE[,VALUE…]`` (see the module's docstring)."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise FilterError(f"{text!r}: write DIMENSION=VALUE[,VALUE…], such as country=US,CA")
    dimension = _dimension(name, tuple(sub_ids))
    signed = _split(rest, dimension)
    excluded = {negative for negative, _ in signed}
    if len(excluded) > 1:
        raise FilterError(
            f"{dimension}: either keep values or drop them (-VALUE), not both in one filter"
        )
    values = tuple(dict.fromkeys(_normal(dimension, v) for _, v in signed))
    if len(values) > MAX_VALUES:
        raise FilterError(f"{dimension}: at most {MAX_VALUES} values")
    return Filter(dimension, values, exclude=excluded == {True})


def _dimension(name: str, sub_ids: tuple[str, ...]) -> str:
    if name.startswith(SUB_ID_PREFIX):
        sub = name[len(SUB_ID_PREFIX) :]
        if sub not in sub_ids:
            declared = ", ".join(sub_ids) or "none"
            raise FilterError(
                f"{name}: the space declares no sub-id {sub!r} (declared: {declared};"
                " xtracker space sub-ids)"
            )
        return name
    if name not in DIMENSIONS:
        raise FilterError(
            f"{name!r} is not a dimension: one of {', '.join(DIMENSIONS)}, or sub.NAME for a"
            " declared sub-id"
        )
    return name


def _split(rest: str, dimension: str) -> list[tuple[bool, str]]:
    """``(excluded, value)`` of each comma-separated value; a backslash escapes."""
    out: list[tuple[bool, str]] = []
    value: list[str] = []
    negative = False
    start = True  # at the first character of a value
    chars = iter(rest)
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise FilterError(f"{dimension}: a value ends with a lone backslash")
            value.append(escaped)
        elif ch == ",":
            out.append(_value(dimension, negative, value))
            value, negative = [], False
            start = True
            continue
        elif ch.isspace() and start:
            continue  # "US, -CA": the space before a value is not part of it
        elif ch == "-" and start:
            negative = True
        else:
            value.append(ch)
        start = False
    out.append(_value(dimension, negative, value))
    return out


def _value(dimension: str, negative: bool, chars: list[str]) -> tuple[bool, str]:
    value = "".join(chars).strip()
    if not value:
        raise FilterError(f"{dimension}: an empty value (write {dimension}=A,B or {dimension}=-A)")
    if len(value) > _VALUE_MAX:
        raise FilterError(f"{dimension}: a value is longer than {_VALUE_MAX} characters")
    return negative, value


def _normal(dimension: str, value: str) -> str:
    if dimension == "country":
        code = value.upper()
        if len(code) != 2 or not code.isascii() or not code.isalpha():
            raise FilterError(f"country: {value!r} is not a two-letter country code (US, DE)")
        return code
    if dimension == "device" and value not in _DEVICES:
        raise FilterError(f"device: {value!r} is not one of {', '.join(_DEVICES)}")
    if dimension == "referrer":
        return value.lower()
    return value


def _escaped(value: str) -> str:
    out = value.replace("\\", "\\\\").replace(",", "\\,")
    return "\\" + out if out.startswith("-") else out


# ------------------------------------------------------------- a link filter from the rollup
# The rollup counts each uid under the one link of its click, so every number of a funnel or a
# series (clicks, distinct uids per step, deposits, depositors, first deposits, revenue) adds
# up exactly across links: a few links are their sum, all links but a few the space's total
# minus theirs.


def add_counts(parts: Sequence[FunnelCounts]) -> FunnelCounts:
    """The funnel of several links (at least one) from theirs. ``unattributed`` is the
    space's in each, and kept as it is."""
    first = parts[0]
    return replace(
        first,
        uids=_sum_ints([p.uids for p in parts]),
        deposits=sum(p.deposits for p in parts),
        first_deposits=sum(p.first_deposits for p in parts),
        revenue=_sum_money([p.revenue for p in parts]),
    )


def subtract_counts(total: FunnelCounts, parts: Sequence[FunnelCounts]) -> FunnelCounts:
    """The funnel of every link but ``parts``' (and of clicks without a link) from the space's
    ``total``."""
    if not parts:
        return total
    gone = add_counts(parts)
    return replace(
        total,
        uids={k: v - gone.uids.get(k, 0) for k, v in total.uids.items()},
        deposits=total.deposits - gone.deposits,
        first_deposits=total.first_deposits - gone.first_deposits,
        revenue=_money_left(total.revenue, gone.revenue),
    )


def add_series(parts: Sequence[Sequence[Any]]) -> list[Any]:
    """A series (one count or amount per bucket) of several links from theirs."""
    return [sum(values) for values in zip(*parts, strict=True)]


def subtract_series(total: Sequence[Any], parts: Sequence[Sequence[Any]]) -> list[Any]:
    """A series of every link but ``parts``' from the space's ``total``."""
    if not parts:
        return list(total)
    return [t - g for t, g in zip(total, add_series(parts), strict=True)]


def _sum_ints(maps: Sequence[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in maps:
        for k, v in m.items():
            out[k] = out.get(k, 0) + v
    return out


def _sum_money(maps: Sequence[dict[str, Decimal]]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for m in maps:
        for k, v in m.items():
            out[k] = out.get(k, Decimal(0)) + v
    return out


def _money_left(total: dict[str, Decimal], gone: dict[str, Decimal]) -> dict[str, Decimal]:
    """What is left per currency; a currency only the removed links took is left out, as a
    query of the other links would leave it out."""
    return {c: v - gone.get(c, Decimal(0)) for c, v in total.items() if c not in gone or
            v != gone[c]}  # fmt: skip
