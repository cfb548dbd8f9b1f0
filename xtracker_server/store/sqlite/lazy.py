"""Modules imported when first used, so that a command pays for the operations it runs only
(``xtracker space list`` does not load the outbox, the rollup or the report cube: the CLI's
start-up, tests/server/test_cli_imports.py)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LazyModule"]


class LazyModule:
    """Stands for the module ``name``; the first attribute read imports it. Through
    ``importlib.import_module``, which holds the import lock: safe from the store's reader
    threads (``importlib.util.LazyLoader`` is not, before Python 3.12)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
