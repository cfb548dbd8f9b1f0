"""The services (xtracker_server/services/) run in process on a real SQLite file, as a
command runs them (``context.opened``: a real ``Store``, its writer on a thread), with a
listener that records what it is told and a DNS resolver that answers from a table (no test
asks real DNS).

    def test_x(tmp_path):
        with services(tmp_path) as env:
            space = env.space("a")
            env.run(links.list_links(OPERATOR, env.ctx, space.space.id))
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from tests.databases import migrated
from tests.fake_resolver import FakeResolver
from xtracker_server.config import Settings
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.services import OPERATOR, SpaceCredential
from xtracker_server.services import spaces as space_services
from xtracker_server.services.context import Context, Listener, opened
from xtracker_server.store.sqlite.spaces import NewSpace

T = TypeVar("T")

#: Names the fake DNS knows: one on a public address, one on a private one.
PUBLIC_HOST = "hooks.partner.test"
PRIVATE_HOST = "inside.partner.test"
ANSWERS = {PUBLIC_HOST: [["93.184.216.34"]], PRIVATE_HOST: [["10.1.2.3"]]}


@dataclass
class Heard(Listener):
    """Records what the services tell the process: ``(what, argument)`` in order."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    def link_changed(self, slug: str) -> None:
        self.calls.append(("link_changed", slug))

    def credentials_ended(self, hashes: Iterable[bytes]) -> None:
        self.calls.append(("credentials_ended", tuple(hashes)))

    def space_deleted(self, space_id: int, slugs: Iterable[str]) -> None:
        self.calls.append(("space_deleted", (space_id, tuple(slugs))))

    def aliases_changed(self, space_id: int) -> None:
        self.calls.append(("aliases_changed", space_id))

    def deliveries_due(self) -> None:
        self.calls.append(("deliveries_due", None))


@dataclass
class Env:
    ctx: Context
    heard: Heard
    loop: asyncio.AbstractEventLoop

    def run(self, call: Awaitable[T]) -> T:
        """The service call's result (its error raised), bounded only to catch a hang."""
        return self.loop.run_until_complete(asyncio.wait_for(call, 60))

    def space(self, name: str = "acme") -> NewSpace:
        return self.run(space_services.create_space(OPERATOR, self.ctx, name))

    def with_settings(self, **changes: object) -> Context:
        return replace(self.ctx, settings=self.ctx.settings.with_(**changes))


def bearer(space: NewSpace) -> SpaceCredential:
    """The principal a request with the space's bearer secret is."""
    return SpaceCredential(space.space.id, CredentialKind.BEARER)


@contextmanager
def services(tmp_path: Path, **changes: Any) -> Iterator[Env]:
    """The services on a database under ``tmp_path`` (new: ``migrated``; one a test made is
    kept); ``changes``: settings not default."""
    db = tmp_path / "services.db"
    if not db.exists():
        migrated(db)
    settings = Settings(db=str(db), public_url="https://track.example.test", **changes)
    heard = Heard()
    resolver = FakeResolver({name: [list(a) for a in found] for name, found in ANSWERS.items()})
    loop = asyncio.new_event_loop()
    opening = opened(settings, listener=heard, resolver=resolver)
    ctx = loop.run_until_complete(opening.__aenter__())
    try:
        yield Env(ctx, heard, loop)
    finally:
        loop.run_until_complete(opening.__aexit__(None, None, None))
        loop.close()
