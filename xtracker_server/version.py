"""The version the server reports (``GET /healthz``, the OpenAPI document): the installed
``xtracker`` distribution's, so pyproject.toml's ``version`` is the only place it is written."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["VERSION"]

try:
    VERSION = version("xtracker")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    VERSION = "0+unknown"
