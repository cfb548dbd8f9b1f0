"""XTRACKER server: the ingress API, the store and the ``xtracker`` command."""

from xtracker_server.app import create_app
from xtracker_server.config import Settings

__all__ = ["Settings", "create_app"]
