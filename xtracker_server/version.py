"""The version the server reports (``GET /healthz``, the OpenAPI document): the distribution's,
read once in xtracker_wire/_version.py (pyproject.toml's ``version`` is the only place it is
written)."""

from __future__ import annotations

from xtracker_wire._version import __version__ as VERSION

__all__ = ["VERSION"]
