"""XTRACKER server: the ingress API, the store and the ``xtracker`` command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xtracker_server.app import create_app
    from xtracker_server.config import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that ``import xtracker_server.store…`` (the writer process, the
    # CLI's database commands) does not load the web application.
    if name == "create_app":
        from xtracker_server.app import create_app

        return create_app
    if name == "Settings":
        from xtracker_server.config import Settings

        return Settings
    raise AttributeError(f"module 'xtracker_server' has no attribute {name!r}")
