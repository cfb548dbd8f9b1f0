"""The operator's JSON API, guarded by the admin token."""

from xtracker_server.admin import deletion, destinations, links, postbacks, reports, routes

__all__ = ["all_routes"]

all_routes = [
    *routes.routes,
    *links.routes,
    *destinations.routes,
    *postbacks.routes,
    *reports.routes,
    *deletion.routes,
]
