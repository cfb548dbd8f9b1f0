"""What a service runs with, besides its principal: the store, the settings, and who hears of
its changes (``Context``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xtracker_server.clock import now_ms
from xtracker_server.config import Settings
from xtracker_server.store.api import Store, open_store

if TYPE_CHECKING:
    from aiohttp.abc import AbstractResolver

__all__ = ["Context", "Listener", "opened"]


class Listener:
    """Told of what a service changed, so the process running it can forget what it keeps in
    memory and wake its delivery worker. This base keeps nothing: the command line's process
    has no caches and no worker (a server on the same file sees the change within
    ``credential_cache_s``, its worker at its next poll). The server's is in
    ``admin/_services.py``."""

    def link_changed(self, slug: str) -> None:
        """A link was created, changed or deleted."""

    def credentials_ended(self, hashes: Iterable[bytes]) -> None:
        """These credentials stopped working (revoked)."""

    def space_deleted(self, space_id: int, slugs: Iterable[str]) -> None:
        """The space, its credentials and its links (``slugs``) are gone."""

    def aliases_changed(self, space_id: int) -> None:
        """The space's postback aliases changed."""

    def sub_ids_changed(self, space_id: int) -> None:
        """The space's sub-id parameters changed."""

    def deliveries_due(self) -> None:
        """Deliveries became due now (replayed, or their destination fixed)."""


@dataclass(frozen=True)
class Context:
    """``store``: where the data is; ``settings``: the server's (the public URL, the address
    guard's switch, what a destination test needs); ``listener``: see ``Listener``;
    ``resolver``: what the address guard asks for a host's addresses (None: the system's);
    ``clock``: now, in epoch milliseconds."""

    store: Store
    settings: Settings
    listener: Listener = field(default_factory=Listener)
    resolver: AbstractResolver | None = None
    clock: Callable[[], int] = now_ms


@asynccontextmanager
async def opened(
    settings: Settings,
    *,
    listener: Listener | None = None,
    resolver: AbstractResolver | None = None,
    inline: bool = False,
) -> AsyncIterator[Context]:
    """A Context on a store of its own for ``settings.db`` (its writer on a thread, no
    statistics refresh), closed at the end: for a process that runs a few services and ends,
    such as a command.

        async with opened(settings) as ctx:
            link = await links.update_link(OPERATOR, ctx, 1, "promo", {"enabled": False})

    ``inline``: the store does everything on the caller's thread (store/sqlite/inline.py), so
    that a service that only uses the store runs to its end without an event loop (cli/_common.py
    ``run``). The file is created (and migrated) if it does not exist: a caller that must not
    create one checks first."""
    # A command's store: its writer and its rollup's catch-up on threads (no process to start),
    # or inline, and no statistics refresh (store/sqlite/stats.py: the server's store does it
    # when it opens, and then regularly).
    # The report cube: a command leaves the rollup as the server built it (one not built yet
    # gets the cube, the default), and drops the cube only with the setting turned off: a
    # command run without the variable never drops nor builds the server's cube. Not eager:
    # the writer starts at the first write, the report rollup is checked by the first write or
    # report (a command that only reads spaces or links needs neither).
    store = open_store(settings.db, sync=settings.sync, readers=1, writer_process=False,
                       stats_on_open=False, report_cube=None if settings.report_cube else False,
                       rollup_process=False, eager=False, inline=inline)  # fmt: skip
    await store.open()
    try:
        yield Context(store, settings, listener or Listener(), resolver)
    finally:
        await store.close()
