"""The reports' old home, for ``cli_report.py`` until its commands call
``xtracker_server.services.reports`` (where the reports now live): remove it then."""

from xtracker_server.services.reports import (
    deliveries_report,
    funnel_report,
    links_report,
    series_report,
)

__all__ = ["deliveries_report", "funnel_report", "links_report", "series_report"]
