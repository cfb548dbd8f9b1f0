"""The store's boundary (issue 15): outside ``xtracker_server/store/``,
code reaches the storage through the Store protocol alone (``xtracker_server.store.api``), and
nothing imports ``sqlite3``: a second backend is an addition under ``store/``, and no caller
depends on SQLite."""

from __future__ import annotations

import ast
from pathlib import Path

import xtracker_server

PACKAGE = Path(xtracker_server.__file__).parent


def _reaches_past(path: Path) -> bool:
    """Whether the module imports ``sqlite3`` or a store module other than ``store.api``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "xtracker_server.store":
                names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "sqlite3" or (
                name.startswith("xtracker_server.store.") and name != "xtracker_server.store.api"
            ):
                return True
    return False


def test_outside_the_store_only_the_protocol_is_imported() -> None:
    reaching = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "store" and _reaches_past(path)
    }
    assert reaching == set()
