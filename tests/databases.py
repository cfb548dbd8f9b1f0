"""New databases for tests, as the first start leaves them, without running the migrations
for each test: ``migrated(path)`` copies a template that the real migrations made once in this
process. A store, a command or a server then opens the copy as it opens any file of its own.

Running every migration on a new file costs about 35 ms of CPU (each schema change makes
SQLite parse its whole schema again); a copy, under 1 ms. Hundreds of tests start on a new
database. Where the migrations, or what a server does to a file it finds missing, are what a
test is about, it starts on a missing file instead (tests/server/test_store.py,
tests/server/test_reversals_migration.py, tests/e2e/test_cli_and_admin.py, ...)."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

from xtracker_server.store.sqlite.db import open_db
from xtracker_server.store.sqlite.migrations import MIGRATIONS

#: Where this process keeps its template; removed when the process exits.
_HOME = tempfile.TemporaryDirectory(prefix="xtracker-template-")


@functools.cache
def _template() -> Path:
    """A database made by the real migrations, then closed: SQLite folds its WAL back into
    the file when the last connection closes, so the file alone is the whole database."""
    path = Path(_HOME.name) / "template.db"
    conn = open_db(str(path))
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    assert version == len(MIGRATIONS), f"the template is at schema {version}"
    assert not path.with_name(path.name + "-wal").exists(), "the template's WAL was left over"
    return path


def migrated(path: Path | str) -> Path:
    """A new database at ``path`` (which must not exist), at the current schema, readable and
    writable by its owner only (0600), as ``xtracker`` creates one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # fails if it exists
    with _template().open("rb") as source, os.fdopen(fd, "wb") as copy:
        shutil.copyfileobj(source, copy)
    return target
