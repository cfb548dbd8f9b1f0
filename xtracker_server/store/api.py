"""The Store: every storage operation of XTRACKER as a named, typed async call, and
``open_store(url)``, the one way to get one. Nothing outside ``store/`` imports anything else
of the store (tests/test_store_boundary.py).

    store = open_store("sqlite:///var/lib/xtracker/xtracker.db")
    await store.open()
    outcome = await store.record_event(draft)  # acknowledged: committed
    await store.close()

Arguments and results are domain records (``domain/entities/`` and the domain modules), the
same whatever backend stores them. Rules every backend keeps, and the contract tests
(tests/store_contract/) check:

- Tenancy: every operation on tenant data takes ``space_id`` and never sees another space's
  rows. The few that span spaces say so (the worker's ``due_destinations`` and ``claim``, the
  operator's counts, ``resolve_slug``: a public slug is how a visitor finds its space).
- A write returns once it is committed: its result may be acknowledged to a client.
- "Not found" is ``None`` (or False, or an empty list), never an exception; a space that is
  marked deleted is not found.
- Conflicts raise the domain's errors (``SlugTaken``, ``TokenNameTaken``, ``NoSuchToken``);
  a storage that cannot do it now raises ``StoreUnavailable`` with a ``FaultReason``.
- Nothing may assume that row ids commit in order: the report rollup and the live tail are
  correct when a lower id commits after a higher one (store/sqlite/rollup.py, domain/tail.py).
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any

from xtracker_server.store.errors import (
    BackupError,
    FaultReason,
    NoSuchToken,
    SlugTaken,
    StoreUnavailable,
    TokenNameTaken,
    retry_after_s,
)
from xtracker_server.store.health import FaultTracker, StorageHealth
from xtracker_server.store.protocol import Store
from xtracker_server.store.sqlite.commit import BatchObserver, is_storage_fault
from xtracker_server.store.sqlite.faults import storage_fault
from xtracker_server.store.sqlite.inuse import DatabaseInUse, RestoreInProgress

if TYPE_CHECKING:
    from xtracker_server.domain.delivery_status import DELIVERY_STATUSES
    from xtracker_server.domain.entities import POSTBACK_OUTCOMES, BackupDone, RestoreDone
    from xtracker_server.store.sqlite.startup import DatabaseRefused, StartupCheck

__all__ = [
    "DELIVERY_STATUSES",
    "POSTBACK_OUTCOMES",
    "BackupError",
    "BatchObserver",
    "DatabaseInUse",
    "DatabaseRefused",
    "FaultReason",
    "FaultTracker",
    "NoSuchToken",
    "RestoreInProgress",
    "SlugTaken",
    "StorageHealth",
    "Store",
    "StoreUnavailable",
    "TokenNameTaken",
    "backup_database",
    "check_database",
    "first_admin_token",
    "is_storage_fault",
    "open_store",
    "refuse_if_restoring",
    "restore_database",
    "retry_after_s",
    "sqlite_path",
    "storage_fault",
]


#: Re-exported, imported when first read (PEP 562): a command that lists spaces does not load
#: the delivery rules, the postback log's records nor the start-up checks of `xtracker serve`.
_LAZY = {
    "DELIVERY_STATUSES": "xtracker_server.domain.delivery_status",
    "POSTBACK_OUTCOMES": "xtracker_server.domain.entities",
    "DatabaseRefused": "xtracker_server.store.sqlite.startup",
    "StartupCheck": "xtracker_server.store.sqlite.startup",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")


def sqlite_path(url: str) -> str:
    """The file of a SQLite store URL: ``sqlite:///rel.db`` (relative), ``sqlite:////abs.db``
    (absolute, SQLAlchemy's spelling), or a plain path. Raises ``ValueError`` for a URL of
    another backend."""
    match = _SCHEME.match(url)
    if match is None:
        return url
    scheme, rest = match.groups()
    if scheme.lower() != "sqlite":
        raise ValueError(f"no store backend for {scheme}:// (this xtracker has sqlite:// only)")
    if not rest.startswith("/") or rest == "/":
        raise ValueError(f"{url!r}: a SQLite URL is sqlite:///FILE (three slashes, then the path)")
    return rest[1:]


def open_store(
    url: str,
    *,
    sync: str = "FULL",
    timeout_s: float | None = None,
    writer_process: bool | None = None,
    observer: BatchObserver | None = None,
    readers: int = 4,
    stats_on_open: bool = True,
    report_cube: bool | None = False,
    rollup_process: bool | None = None,
    eager: bool = True,
    inline: bool = False,
) -> Store:
    """The store at ``url`` (see ``sqlite_path``), not open yet. ``sync``: SQLite's
    synchronous mode; ``timeout_s``: each access's deadline; ``writer_process``: write in a
    process of its own (None: where it can) rather than a thread; ``observer``: told of every
    write batch (the metrics); ``stats_on_open``: refresh the planner's statistics when it
    opens (a server's store; a command's, open for a moment, leaves it to the server);
    ``report_cube``: the report rollup keeps the report cube, and grouped reports read it
    (XTRACKER_REPORT_CUBE; None: the rollup as it was built, a new one without);
    ``rollup_process``: catch the report rollup up in a process of its own (None: where it
    can) rather than a thread;
    ``eager``: check the report rollup and start the writer when it opens (a server's store);
    False: the writer at its first write, the rollup before its first write or report (a
    command's: one that only reads starts no writer and loads no rollup); ``inline``: every
    access on the caller's thread, so that the store's coroutines never wait and run without an
    event loop (a command's, store/sqlite/inline.py; ``readers`` and ``writer_process`` then
    do not apply)."""
    from xtracker_server.store.sqlite.runtime import Store as SqliteStore

    return SqliteStore(
        sqlite_path(url),
        sync=sync,
        timeout_s=timeout_s,
        writer_process=writer_process,
        observer=observer,
        readers=readers,
        stats_on_open=stats_on_open,
        report_cube=report_cube,
        rollup_process=rollup_process,
        eager=eager,
        inline=inline,
    )


# ------------------------------------------------------------------ the database, before and
# besides a store: what `xtracker serve`, `worker`, `backup` and `restore` do to it.


def check_database(url: str, *, sync: str = "FULL") -> StartupCheck:
    """Check, migrate and write once to the database at ``url`` (creating it if need be),
    before a server or worker starts on it. Raises ``DatabaseRefused``, whose message says what
    is wrong (damaged, not writable) and what to do."""
    from xtracker_server.store.sqlite.startup import check_database as check

    return check(sqlite_path(url), sync=sync)


def first_admin_token(url: str, now_ms: int) -> str | None:
    """A new operator token (shown once) if the database at ``url`` has none yet, else None,
    in one transaction: of two servers starting at once, one makes it. Raises
    ``DatabaseRefused`` if the database cannot be opened."""
    from xtracker_server.store.sqlite.startup import first_admin_token as first

    return first(sqlite_path(url), now_ms)


def refuse_if_restoring(url: str) -> None:
    """Raise ``RestoreInProgress`` while ``xtracker restore`` replaces the database at ``url``
    (an open store refuses it as well: this says so before anything else starts)."""
    from xtracker_server.store.sqlite.inuse import hold_shared

    hold_shared(sqlite_path(url)).release()


def backup_database(url: str, target: str, *, force: bool = False) -> BackupDone:
    """A consistent copy of the database at ``url`` at ``target`` (created 0600; refused if it
    exists, unless ``force``), made while servers go on writing. Raises ``BackupError`` or
    ``OSError``."""
    from xtracker_server.store.sqlite.backup import backup

    return backup(sqlite_path(url), target, force=force)


def restore_database(url: str, source: str) -> RestoreDone:
    """Replace the database at ``url`` with the backup ``source``, only while no server or
    worker uses it. Raises ``DatabaseInUse``, ``BackupError`` or ``OSError`` (nothing changed
    then)."""
    from xtracker_server.store.sqlite.backup import restore

    return restore(sqlite_path(url), source)
