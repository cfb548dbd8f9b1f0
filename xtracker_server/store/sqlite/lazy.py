"""Modules imported when first used, so that a command pays for the operations it runs only
(``xtracker space list`` does not load the outbox, the rollup or the report cube: the CLI's
start-up, tests/server/test_cli_imports.py); and read-only mappings worked out when first read
(a report's groups: it shows a hundred of thousands of them)."""

from __future__ import annotations

import importlib
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["LazyMapping", "LazyModule"]

K = TypeVar("K")
V = TypeVar("V", covariant=True)


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


class LazyMapping(Mapping[K, V]):
    """A read-only mapping whose items ``_read`` works out when first read (and keeps: two
    threads reading at once both work out the same)."""

    __slots__ = ()

    @abstractmethod
    def _read(self) -> Mapping[K, V]: ...

    def __getitem__(self, key: K) -> V:
        return self._read()[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return repr(self._read())
