"""The new databases the tests start on (tests/databases.py) are what the code makes of a
missing file: a copy of the template must not drift from a first open."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.databases import migrated
from xtracker_server.store.sqlite.db import open_db


def _shape(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        return {
            "schema": sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema")),
            **{
                pragma: conn.execute(f"PRAGMA {pragma}").fetchone()[0]
                for pragma in ("user_version", "journal_mode", "auto_vacuum", "page_size")
            },
            "rows": {
                table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                for (table,) in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")
            },
            "mode": stat.S_IMODE(os.stat(path).st_mode),
        }
    finally:
        conn.close()


def test_a_migrated_copy_is_the_database_a_first_open_makes(tmp_path: Path) -> None:
    opened = tmp_path / "opened.db"
    open_db(str(opened)).close()
    copy = migrated(tmp_path / "new" / "copy.db")
    assert _shape(copy) == _shape(opened)
    assert _shape(copy)["mode"] == 0o600
    assert [p.name for p in copy.parent.iterdir()] == ["copy.db"]  # the file alone, no WAL


def test_a_migrated_copy_never_replaces_a_file(tmp_path: Path) -> None:
    kept = tmp_path / "kept.db"
    kept.write_bytes(b"a test's own file")
    with pytest.raises(FileExistsError):
        migrated(kept)
    assert kept.read_bytes() == b"a test's own file"
