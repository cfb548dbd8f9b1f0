"""The operator's JSON API, guarded by the admin token."""

from xtracker_server.admin.routes import routes

__all__ = ["routes"]
