"""The filters of a report (``country=US,CA``, ``link=-test``: domain/filters.py), read for a
space and answered from the report rollup where it can.

The rollup counts by link only, so today a report answers a ``link`` filter (one link, several,
or all but some: the numbers add up exactly across links, ``domain.filters.add_counts``) and
refuses every other dimension with a 422 that says so: it never scans the clicks or the inbox
on a request's path. Grouping and filtering by the other dimensions comes with the rollup that
keeps them (issue 17 §6). docs/reports.md#filters lists what works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from xtracker_server.domain.filters import (
    ROLLUP_DIMENSIONS,
    SUB_ID_PREFIX,
    Filter,
    FilterError,
    Filters,
    add_counts,
    add_series,
    parse_filters,
    subtract_counts,
    subtract_series,
)
from xtracker_server.domain.reports import FunnelCounts, FunnelMode, ReportError, Window
from xtracker_server.store.api import Store

__all__ = ["LinkScope", "funnel_counts", "read_filters", "series_counts", "series_revenue"]


@dataclass(frozen=True)
class LinkScope:
    """The links a report counts: ``link_ids`` (their ids in the space), or with ``exclude``
    every link but those. ``filter`` is the link filter as given (its slugs)."""

    filter: Filter
    link_ids: tuple[int, ...]

    @property
    def exclude(self) -> bool:
        return self.filter.exclude


async def read_filters(
    store: Store, space_id: int, raw: Sequence[str], *, link: str | None = None
) -> tuple[Filters, LinkScope | None]:
    """The report's filters, and the links they keep (None: all). ReportError (field
    ``filter``) for a filter that cannot be read, one the rollup cannot answer yet, a link
    that is not the space's, or a link filter given with ``link`` too."""
    sub_ids: tuple[str, ...] = ()
    if any(r.strip().startswith(SUB_ID_PREFIX) for r in raw):
        sub_ids = await store.sub_id_params(space_id) or ()
    try:
        filters = parse_filters(raw, sub_ids=sub_ids)
    except FilterError as exc:
        raise ReportError("filter", exc.problem) from None
    beyond = filters.beyond(ROLLUP_DIMENSIONS)
    if beyond:
        names = ", ".join(f.dimension for f in beyond)
        raise ReportError(
            "filter",
            f"{names}: the reports cannot filter by this yet: their rollup counts by link only"
            f" (filters that work today: {', '.join(ROLLUP_DIMENSIONS)}; docs/reports.md#filters)",
        )
    chosen = filters.of("link")
    if chosen is None:
        return filters, None
    if link is not None:
        raise ReportError("filter", "link: give the link once, as link or as a filter")
    ids = []
    for slug in chosen.values:
        found = await store.link_by_slug(space_id, slug)
        if found is None:
            raise ReportError("filter", f"link: no link {slug!r} in space {space_id}")
        ids.append(found.id)
    return filters, LinkScope(chosen, tuple(ids))


async def funnel_counts(
    store: Store,
    space_id: int,
    window: Window,
    scope: LinkScope,
    *,
    mode: FunnelMode = FunnelMode.ACTIVITY,
) -> FunnelCounts:
    """The funnel of the scope's links, from the rollup's per-link counts (in either mode: a
    uid counts under the one link of its click, so the links' funnels add up)."""
    parts = [
        await store.funnel_counts(space_id, window, link_id=i, mode=mode) for i in scope.link_ids
    ]
    if not scope.exclude:
        return add_counts(parts)
    return subtract_counts(await store.funnel_counts(space_id, window, mode=mode), parts)


async def series_counts(
    store: Store, space_id: int, step: str, starts: Sequence[int], to_ms: int, scope: LinkScope
) -> list[int]:
    parts = [
        await store.series_counts(space_id, step, starts, to_ms, link_id=i) for i in scope.link_ids
    ]
    if not scope.exclude:
        return add_series(parts)
    return subtract_series(await store.series_counts(space_id, step, starts, to_ms), parts)


async def series_revenue(
    store: Store,
    space_id: int,
    currency: str,
    starts: Sequence[int],
    to_ms: int,
    scope: LinkScope,
    *,
    reversed_only: bool = False,
) -> list[Decimal]:
    parts = [
        await store.series_revenue(
            space_id, currency, starts, to_ms, link_id=i, reversed_only=reversed_only
        )
        for i in scope.link_ids
    ]
    if not scope.exclude:
        return add_series(parts)
    everything = await store.series_revenue(
        space_id, currency, starts, to_ms, reversed_only=reversed_only
    )
    return subtract_series(everything, parts)
