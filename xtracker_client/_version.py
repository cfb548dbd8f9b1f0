"""The client's version: the distribution's, read once in xtracker_wire/_version.py."""

from __future__ import annotations

from xtracker_wire._version import __version__

__all__ = ["__version__"]
