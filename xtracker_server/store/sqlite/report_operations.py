"""The Store protocol's reports and costs on SQLite (``SqliteOperations`` in
store/sqlite/sqlite_store.py inherits them): reads of the report rollup and the cube, on a
reader thread; costs and rates, through the writer."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, TypeVar

from xtracker_server.store.sqlite.lazy import LazyModule

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import date
    from decimal import Decimal

    from xtracker_server.domain.costs import CostEntry, CostLevel, Rate
    from xtracker_server.domain.entities import DestinationHealth
    from xtracker_server.domain.groups import GroupCounts, GroupQuery
    from xtracker_server.domain.reports import FunnelCounts, FunnelMode, LinkRow, Window
    from xtracker_server.domain.unrecorded import UnrecordedCount
    from xtracker_server.store.sqlite import costs, cube, delivery_health, reports, unrecorded
else:  # imported by the first report that needs each (store/sqlite/lazy.py)
    costs = LazyModule("xtracker_server.store.sqlite.costs")
    cube = LazyModule("xtracker_server.store.sqlite.cube")
    delivery_health = LazyModule("xtracker_server.store.sqlite.delivery_health")
    reports = LazyModule("xtracker_server.store.sqlite.reports")
    unrecorded = LazyModule("xtracker_server.store.sqlite.unrecorded")

T = TypeVar("T")

__all__ = ["ReportOperations"]


class ReportOperations(abc.ABC):
    """Reports, costs and rates, over ``read`` and ``write``."""

    report_cube: bool | None

    @abc.abstractmethod
    async def read(self, op: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...

    @abc.abstractmethod
    async def write(self, op: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...

    # ------------------------------------------------------------------ reports

    async def funnel_counts(
        self,
        space_id: int,
        window: Window,
        *,
        link_id: int | None = None,
        mode: FunnelMode | None = None,  # None: FunnelMode.ACTIVITY
    ) -> FunnelCounts:
        # Here: domain/reports.py is for the commands that report, not for every store.
        from xtracker_server.domain.reports import FunnelMode

        return await self.read(
            reports.funnel_counts, space_id, window, link_id=link_id,
            mode=mode or FunnelMode.ACTIVITY, cube=self.report_cube,
        )  # fmt: skip

    async def link_rows(self, space_id: int, window: Window) -> list[LinkRow]:
        return await self.read(reports.link_rows, space_id, window)

    async def deposit_currencies(self, space_id: int, window: Window) -> dict[str, int]:
        return await self.read(reports.deposit_currencies, space_id, window)

    async def series_counts(
        self,
        space_id: int,
        step: str,
        starts: Sequence[int],
        to_ms: int,
        *,
        link_id: int | None = None,
    ) -> list[int]:
        return await self.read(
            reports.series_counts, space_id, step, starts, to_ms, link_id=link_id
        )

    async def series_revenue(
        self,
        space_id: int,
        currency: str,
        starts: Sequence[int],
        to_ms: int,
        *,
        link_id: int | None = None,
        reversed_only: bool = False,
    ) -> list[Decimal]:
        return await self.read(
            reports.series_revenue,
            space_id,
            currency,
            starts,
            to_ms,
            link_id=link_id,
            reversed_only=reversed_only,
        )

    async def group_counts(self, space_id: int, query: GroupQuery) -> list[GroupCounts]:
        return await self.read(cube.group_counts, space_id, query, cube=self.report_cube)

    async def delivery_health(self, space_id: int, now_ms: int) -> list[DestinationHealth]:
        return await self.read(delivery_health.delivery_health, space_id, now_ms)

    async def add_unrecorded(self, counts: list[UnrecordedCount]) -> None:
        await self.write(unrecorded.add_unrecorded, counts)

    # ------------------------------------------------------------------ costs and rates

    async def put_costs(
        self, space_id: int, entries: list[CostEntry], now_ms: int
    ) -> tuple[int, int] | None:
        return await self.write(costs.put_costs, space_id, entries, now_ms)

    async def delete_cost(self, space_id: int, day: date, level: CostLevel, object_id: str) -> bool:
        return await self.write(costs.delete_costs, space_id, day, level, object_id)

    async def list_costs(
        self, space_id: int, from_day: date, to_day: date, level: CostLevel | None = None
    ) -> list[CostEntry]:
        return await self.read(costs.list_costs, space_id, from_day, to_day, level)

    async def set_rate(self, space_id: int, rate: Rate, now_ms: int) -> bool:
        return await self.write(costs.set_rate, space_id, rate, now_ms)

    async def list_rates(self, space_id: int) -> list[Rate]:
        return await self.read(costs.list_rates, space_id)
