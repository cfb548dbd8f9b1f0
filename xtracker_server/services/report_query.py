"""The window and filters every report reads, as its user gives them: one value for the admin
API's query parameters and the command line's options, read once (``window``).

    >>> ReportQuery(from_="2026-11-01", to="2026-11-08", tz="Asia/Kolkata").window(now)
    (Window(from_ms=1793471400000, to_ms=1794076200000), zoneinfo.ZoneInfo(key='Asia/Kolkata'))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from xtracker_server.domain import reports as domain
from xtracker_server.domain.reports import Window

__all__ = ["ReportQuery", "report_now"]


def report_now(clock: Callable[[], int]) -> int:
    """The end of a report's window that ends now, as of the clock: after this millisecond, so
    that what was stamped in it (a click recorded just before the call) counts."""
    return clock() + 1


@dataclass(frozen=True)
class ReportQuery:
    """The last ``days`` (ending now), or ``from_`` to ``to`` (dates, datetimes or epoch
    milliseconds, in ``tz``: domain.reports.resolve_window); ``filters`` as written
    (``country=US,CA``, domain/filters.py). Checked when read, by ``window``."""

    days: int | None = None
    from_: str | None = None
    to: str | None = None
    tz: str | None = None
    filters: tuple[str, ...] = ()

    @property
    def tz_name(self) -> str:
        """The time zone as reports name it: its IANA name, or ``UTC``."""
        return self.tz if self.tz and self.tz.upper() != "UTC" else "UTC"

    def params(self) -> dict[str, Any]:
        """The same as the keyword arguments of the report builders (services/reports.py
        ``funnel_report`` …)."""
        return {"days": self.days, "from_": self.from_, "to": self.to, "tz": self.tz,
                "filters": self.filters}  # fmt: skip

    def window(self, now_ms: int) -> tuple[Window, tzinfo]:
        """The window in epoch milliseconds and the time zone; ReportError for either."""
        zone = domain.zone(self.tz)
        window = domain.resolve_window(
            now_ms=now_ms, days=self.days, from_=self.from_, to=self.to, tz=zone
        )
        return window, zone
