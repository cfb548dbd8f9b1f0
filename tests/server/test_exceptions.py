"""One exception tree for the server: every exception it defines derives from
``XTrackerServerError``, and the tree drawn in ``exceptions.py`` names each of them."""

from __future__ import annotations

import importlib
import pkgutil
import re

import xtracker_server
from xtracker_server import exceptions
from xtracker_server.exceptions import XTrackerServerError


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of the package (the CLI's modules included),
    by name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(xtracker_server.__path__, "xtracker_server."):
        if info.name.endswith("__main__"):
            continue  # running it is running the CLI
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
            ):
                found[value.__qualname__] = value
    return found


def test_every_exception_the_server_defines_is_an_xtracker_server_error() -> None:
    classes = _exception_classes()
    assert len(classes) >= 17
    outside = [name for name, cls in classes.items() if not issubclass(cls, XTrackerServerError)]
    assert outside == []


def test_the_drawn_tree_names_every_exception_the_server_defines() -> None:
    drawn = set(re.findall(r"[├└]── (\w+)", exceptions.__doc__ or ""))
    assert {"XTrackerServerError", *drawn} == set(_exception_classes())


def test_each_kept_the_builtin_error_it_was() -> None:
    # What code caught before the tree existed still catches it.
    classes = _exception_classes()
    for name in ("SlugTaken", "TokenNameTaken", "PayloadTooLong", "ReportError", "ProbeRefused"):
        assert issubclass(classes[name], ValueError), name
    for name in ("StoreUnavailable", "DatabaseRefused"):
        assert issubclass(classes[name], RuntimeError), name
    assert issubclass(classes["NoSuchToken"], LookupError)
