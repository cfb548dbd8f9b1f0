"""The version of the installed ``xtracker`` distribution: pyproject.toml's ``version`` is the
only place it is written. The client (its User-Agent) and the server (/healthz, the OpenAPI
document) both report this one."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("xtracker")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
