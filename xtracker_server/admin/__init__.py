"""The operator's JSON API, guarded by the admin token."""

from xtracker_server.admin import (
    costs,
    currencies,
    deletion,
    destinations,
    links,
    metrics,
    postbacks,
    reports,
    routes,
    sub_ids,
    tokens,
)

__all__ = ["all_routes"]

all_routes = [
    *routes.routes,
    *links.routes,
    *destinations.routes,
    *postbacks.routes,
    *reports.routes,
    *tokens.routes,
    *currencies.routes,
    *metrics.routes,
    *deletion.routes,
    *costs.routes,
    *sub_ids.routes,
]
