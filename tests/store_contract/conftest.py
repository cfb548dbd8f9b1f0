"""The backends the Store contract (tests/store_contract/) runs against, and its helpers.

Each backend is a store opened once for the whole suite: every test makes the spaces it needs,
so tests do not see each other's rows (and the suite checks that spaces never do). A second
backend adds an entry to ``BACKENDS``: a factory of its store, not opened yet, and a way to
make its storage refuse writes for a moment (``storage_down``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from xtracker_server.domain.clicks import ClickDraft
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.entities import InboxDraft, Link, LogEntry, NewSpace
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.store.api import Store, open_store, sqlite_path
from xtracker_server.store.sqlite.db import connect

T = TypeVar("T")

#: The clock of the suite's rows (epoch milliseconds): tests pass times explicitly.
T0 = 1_750_000_000_000
#: Each access's deadline in the suite's stores (generous: the machine may be busy).
TIMEOUT_S = 30.0


@contextlib.contextmanager
def _sqlite_lock_held(url: str) -> Iterator[None]:
    """Another connection holds the SQLite file's write lock: writes wait, then time out."""
    holder = connect(sqlite_path(url))
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@dataclass(frozen=True)
class BackendKind:
    open: Callable[[str, float], Store]  # a store of the database ``url``, with a deadline
    url: Callable[[str], str]  # the url of a new database under a directory
    storage_down: Callable[[str], contextlib.AbstractContextManager[None]]


BACKENDS = {
    "sqlite-writer-process": BackendKind(
        open=lambda url, timeout_s: open_store(url, writer_process=True, timeout_s=timeout_s),
        url=lambda directory: f"sqlite:///{directory}/contract.db",
        storage_down=_sqlite_lock_held,
    ),
    "sqlite-writer-thread": BackendKind(
        open=lambda url, timeout_s: open_store(url, writer_process=False, timeout_s=timeout_s),
        url=lambda directory: f"sqlite:///{directory}/contract.db",
        storage_down=_sqlite_lock_held,
    ),
    # A command's store: everything on the caller's thread, no event loop needed
    # (store/sqlite/inline.py); here it runs on the backend's loop, which it never waits on
    "sqlite-inline": BackendKind(
        open=lambda url, timeout_s: open_store(url, inline=True, timeout_s=timeout_s),
        url=lambda directory: f"sqlite:///{directory}/contract.db",
        storage_down=_sqlite_lock_held,
    ),
    # XTRACKER_REPORT_CUBE on: the rollup keeps the report cube, and grouped reports read it
    "sqlite-report-cube": BackendKind(
        open=lambda url, timeout_s: open_store(
            url, writer_process=False, timeout_s=timeout_s, report_cube=True
        ),
        url=lambda directory: f"sqlite:///{directory}/contract.db",
        storage_down=_sqlite_lock_held,
    ),
}


class Backend:
    """A store on an event loop of its own thread; ``run`` waits for a coroutine on it."""

    def __init__(self, kind: BackendKind, directory: Path) -> None:
        self.kind = kind
        self.url = kind.url(str(directory))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.store = self.open_another(TIMEOUT_S)
        self._names = itertools.count(1)

    def run(self, awaitable: Awaitable[T], timeout_s: float = 60.0) -> T:
        async def wrapped() -> T:
            return await awaitable

        future: Future[T] = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        return future.result(timeout_s)

    def open_another(self, timeout_s: float) -> Store:
        """Another store of the same database, open (on this loop): the caller closes it."""
        store = self.kind.open(self.url, timeout_s)
        self.run(store.open())
        return store

    def storage_down(self) -> contextlib.AbstractContextManager[None]:
        """The storage refuses writes while in the block."""
        return self.kind.storage_down(self.url)

    def close(self) -> None:
        self.run(self.store.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    # ------------------------------------------------------------------ helpers

    def name(self, prefix: str) -> str:
        """A name no other test of the suite uses (slugs are unique across spaces)."""
        return f"{prefix}{next(self._names)}"

    def space(self) -> NewSpace:
        return self.run(self.store.create_space(self.name("space-"), T0))

    def link(self, space_id: int) -> Link:
        spec = LinkSpec(kind=LinkKind.BOT, target="contract_bot")
        return self.run(self.store.create_link(space_id, self.name("slug"), spec, T0))

    def click(self, space_id: int, uid: str, link_id: int | None = None, at: int = T0) -> str:
        draft = ClickDraft(space_id=space_id, uid=uid, created_ms=at, source="api", link_id=link_id)
        return self.run(self.store.record_click(draft))


def event(
    space_id: int,
    event: str,
    uid: str | None,
    *,
    eid: str | None = None,
    tg_id: int | None = None,
    at: int = T0,
    value: str | None = None,
    currency: str | None = None,
    source: str = "api",
) -> InboxDraft:
    """An event as ingress drafts it (its dedup key by the domain's rule)."""
    return InboxDraft(
        space_id=space_id,
        dedup_key=dedup_key(space_id, uid, tg_id, event, eid, at),
        event=event,
        uid=uid,
        tg_id=tg_id,
        eid=eid,
        value=value,
        currency=currency,
        occurred_at_ms=at,
        received_ms=at,
        source=source,
    )


def log_entry(space_id: int, **fields: object) -> LogEntry:
    """A postback log row (a GET /e call) with ``fields`` over plain defaults."""
    values: dict[str, object] = {"at_ms": T0, "ip": "127.0.0.1", "method": "GET",
                                 "query": "token=***&event=deposit", "body": None}  # fmt: skip
    values.update(fields)
    return LogEntry(space_id=space_id, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="package", params=list(BACKENDS))
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    opened = Backend(BACKENDS[request.param], tmp_path_factory.mktemp(request.param))
    yield opened
    opened.close()
