"""The version of the ``xtracker`` distribution: pyproject.toml's ``version`` is the only place
it is written. The client (its User-Agent) and the server (/healthz, the OpenAPI document) both
report this one.

Imported from a source checkout (an editable install, or the tree on ``sys.path``), it is read
from that checkout's pyproject.toml: the metadata an editable install wrote keeps the version
of the day it was installed. Installed from a wheel, it is the installed metadata's."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["__version__"]


def _checkout_version() -> str | None:
    """The version in the pyproject.toml next to this package, if it is xtracker's."""
    try:
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8")
    except OSError:
        return None
    if not re.search(r'^name = "xtracker"$', text, re.M):
        return None
    found = re.search(r'^version = "([^"]+)"$', text, re.M)
    return found.group(1) if found else None


def _installed_version() -> str:
    # Imported here: importlib.metadata costs a command's start-up ~20 ms (bench/cli.py), and a
    # source checkout never needs it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xtracker")
    except PackageNotFoundError:  # a source tree on sys.path without a pyproject.toml
        return "0+unknown"


__version__ = _checkout_version() or _installed_version()
