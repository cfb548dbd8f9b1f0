"""The Store protocol (store/api.py) on SQLite: each named operation is one function of the
``store/*.py`` modules, run by the group-commit writer (writes, store/sqlite/operations.py) or on a
reader thread (reads). ``runtime.Store``, the SQLite store that ``open_store`` returns, adds
``read``, ``write`` and ``write_grouped`` and the life cycle."""

from __future__ import annotations

import abc
import functools
from typing import TYPE_CHECKING, Any, TypeVar

from xtracker_server.clock import now_ms
from xtracker_server.store.errors import FaultReason, StoreUnavailable
from xtracker_server.store.sqlite.lazy import LazyModule
from xtracker_server.store.sqlite.report_operations import ReportOperations

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Collection, Sequence

    from xtracker_server.domain.binds import BindKind
    from xtracker_server.domain.clicks import ClickDraft
    from xtracker_server.domain.credentials import CredentialKind
    from xtracker_server.domain.deletion import Person
    from xtracker_server.domain.destinations import DestinationKind, PreparedDestination
    from xtracker_server.domain.entities import (
        BackupDone,
        Batch,
        BindOutcome,
        Claimed,
        Credential,
        DeliveryRow,
        Destination,
        Erased,
        InboxDraft,
        InboxEvent,
        InboxOutcome,
        IngestToken,
        Link,
        LogEntry,
        LoggedEntry,
        Marked,
        NewSpace,
        NewToken,
        Revocation,
        Rotation,
        Settled,
        Space,
        StorageFigures,
        Unhealthy,
    )
    from xtracker_server.domain.link_input import LinkSpec
    from xtracker_server.domain.outbound import DeliveryContext
    from xtracker_server.domain.postbacks import Aliases
    from xtracker_server.domain.tail import Ids, Marks, Poll, TailBatch
    from xtracker_server.store.sqlite import (
        backup,
        binds,
        clicks,
        costs,
        cube,
        deletion,
        destinations,
        erasure,
        inbox,
        links,
        outbox,
        postbacks,
        reports,
        rollup_marks,
        spaces,
        tail,
        unrecorded,
        wal,
    )
    from xtracker_server.store.sqlite.inline import InlineWriter
    from xtracker_server.store.sqlite.writer import Writer
else:  # imported by the first operation that needs each (store/sqlite/lazy.py)
    backup = LazyModule("xtracker_server.store.sqlite.backup")
    binds = LazyModule("xtracker_server.store.sqlite.binds")
    clicks = LazyModule("xtracker_server.store.sqlite.clicks")
    costs = LazyModule("xtracker_server.store.sqlite.costs")
    cube = LazyModule("xtracker_server.store.sqlite.cube")
    deletion = LazyModule("xtracker_server.store.sqlite.deletion")
    destinations = LazyModule("xtracker_server.store.sqlite.destinations")
    erasure = LazyModule("xtracker_server.store.sqlite.erasure")
    inbox = LazyModule("xtracker_server.store.sqlite.inbox")
    links = LazyModule("xtracker_server.store.sqlite.links")
    outbox = LazyModule("xtracker_server.store.sqlite.outbox")
    postbacks = LazyModule("xtracker_server.store.sqlite.postbacks")
    reports = LazyModule("xtracker_server.store.sqlite.reports")
    rollup_marks = LazyModule("xtracker_server.store.sqlite.rollup_marks")
    spaces = LazyModule("xtracker_server.store.sqlite.spaces")
    tail = LazyModule("xtracker_server.store.sqlite.tail")
    unrecorded = LazyModule("xtracker_server.store.sqlite.unrecorded")
    wal = LazyModule("xtracker_server.store.sqlite.wal")

T = TypeVar("T")
A = TypeVar("A")

__all__ = ["SqliteOperations"]


#: How long ``applied_removals`` helps the rollup catch up first.
_APPLIED_WAIT_S = 1.0


class SqliteOperations(ReportOperations):
    """The named operations, over the three primitives of ``runtime.Store`` (the reports'
    and the costs': ``ReportOperations``)."""

    path: str
    writer: Writer | InlineWriter
    timeout_s: float | None

    # ``read``, ``write`` and ``report_cube``: declared by ReportOperations

    @abc.abstractmethod
    async def write_grouped(self, group: Callable[[Any, list[A]], list[T]], arg: A) -> T: ...

    @abc.abstractmethod
    async def catch_up_reports(
        self, budget_s: float | None = None, *, cube_may_lag: bool = False,
        background: bool = False,
    ) -> int: ...  # fmt: skip

    @abc.abstractmethod
    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T: ...

    # ------------------------------------------------------------------ life cycle, health

    def writer_running(self) -> bool:
        return self.writer.running

    def writer_restarts(self) -> int:
        return self.writer.restarts

    async def backup(self, target: str, *, force: bool = False) -> BackupDone:
        return await self.off_loop(functools.partial(backup.backup, force=force), self.path, target)

    # ------------------------------------------------------------------ ingress

    async def record_event(self, draft: InboxDraft) -> InboxOutcome:
        return await self.write_grouped(inbox.insert_events, draft)

    async def record_events(self, drafts: list[InboxDraft]) -> list[InboxOutcome]:
        # Written only if it reaches the database within 80% of the write deadline, so that a
        # 503 (the deadline passed) means that nothing of the batch was stored, except for a
        # commit that takes more than the last fifth of the deadline (inbox.insert_batch).
        timeout_s = self.timeout_s
        not_after = None if timeout_s is None else now_ms() + int(timeout_s * 800)
        try:
            return await self.write(inbox.insert_batch, drafts, not_after)
        except inbox.LateBatch as exc:
            detail = f"the batch was not written: {exc} (XTRACKER_WRITE_TIMEOUT_S)"
            raise StoreUnavailable(FaultReason.TIMEOUT, detail) from None

    async def record_click(self, draft: ClickDraft) -> str:
        return await self.write_grouped(clicks.insert_clicks, draft)

    async def record_kept_clicks(self, drafts: list[ClickDraft]) -> int:
        return await self.write(clicks.insert_kept_clicks, drafts)

    async def click_seen(self, space_id: int, link_id: int, uid: str, since_ms: int) -> bool:
        return await self.read(clicks.recent_click_of_link, space_id, link_id, uid, since_ms)

    async def bind(
        self, space_id: int, uid: str, tg_id: int, now_ms: int, kind: BindKind | None = None
    ) -> BindOutcome:
        if kind is None:
            from xtracker_server.domain.binds import BindKind  # binds only: not at start-up

            kind = BindKind.BEARER
        return await self.write(binds.bind, space_id, uid, tg_id, now_ms, kind)

    async def record_postback(
        self, draft: InboxDraft, entry: LogEntry
    ) -> tuple[InboxOutcome, bool]:
        return await self.write(postbacks.record_postback, draft, entry)

    async def log_postback(self, entry: LogEntry) -> int:
        return await self.write(postbacks.log_postback, entry)

    async def list_events(self, space_id: int, *, limit: int = 100) -> list[InboxEvent]:
        return await self.read(inbox.list_events, space_id, limit=limit)

    # ------------------------------------------------------------------ spaces, credentials

    async def create_space(self, name: str, now_ms: int) -> NewSpace:
        return await self.write(spaces.create_space, name, now_ms)

    async def list_spaces(self) -> list[Space]:
        return await self.read(spaces.list_spaces)

    async def get_space(self, space_id: int) -> Space | None:
        return await self.read(spaces.get_space, space_id)

    async def find_credential(self, secret_hash: bytes, now_ms: int) -> Credential | None:
        return await self.read(spaces.find_credential, secret_hash, now_ms)

    async def rotate_credential(
        self, space_id: int, kind: CredentialKind, now_ms: int, name: str | None = None
    ) -> Rotation | None:
        return await self.write(spaces.rotate_credential, space_id, kind, now_ms, name)

    async def revoke_previous(
        self, space_id: int, kind: CredentialKind, now_ms: int, name: str | None = None
    ) -> Revocation | None:
        return await self.write(spaces.revoke_previous, space_id, kind, now_ms, name)

    async def add_ingest_token(self, space_id: int, name: str, now_ms: int) -> NewToken | None:
        return await self.write(spaces.add_ingest_token, space_id, name, now_ms)

    async def list_ingest_tokens(self, space_id: int, now_ms: int) -> list[IngestToken]:
        return await self.read(postbacks.ingest_tokens, space_id, now_ms)

    async def revoke_ingest_token(self, space_id: int, name: str, now_ms: int) -> Revocation | None:
        return await self.write(spaces.revoke_ingest_token, space_id, name, now_ms)

    async def is_ingest_token_of(self, space_id: int, token: str, now_ms: int) -> bool:
        return await self.read(postbacks.is_ingest_token_of, space_id, token, now_ms)

    async def has_admin_token(self) -> bool:
        return await self.read(spaces.has_admin_token)

    async def reset_admin_token(self, now_ms: int) -> str:
        return await self.write(spaces.reset_admin_token, now_ms)

    async def allowed_currencies(self, space_id: int) -> tuple[str, ...] | None:
        return await self.read(spaces.allowed_currencies, space_id)

    async def set_allowed_currencies(self, space_id: int, codes: tuple[str, ...]) -> bool:
        return await self.write(spaces.set_allowed_currencies, space_id, codes)

    async def sub_id_params(self, space_id: int) -> tuple[str, ...] | None:
        return await self.read(spaces.sub_id_params, space_id)

    async def set_sub_id_params(self, space_id: int, names: tuple[str, ...]) -> bool:
        return await self.write(spaces.set_sub_id_params, space_id, names)

    async def token_binds_allowed(self, space_id: int) -> bool:
        return await self.read(binds.token_binds_allowed, space_id)

    async def set_token_binds(self, space_id: int, allowed: bool) -> bool:
        return await self.write(binds.set_token_binds, space_id, allowed)

    # ------------------------------------------------------------------ links

    async def create_link(self, space_id: int, slug: str, spec: LinkSpec, now_ms: int) -> Link:
        return await self.write(links.create_link, space_id, slug, spec, now_ms)

    async def update_link(
        self, space_id: int, slug: str, changes: dict[str, Any], now_ms: int
    ) -> Link | None:
        return await self.write(links.update_link, space_id, slug, changes, now_ms)

    async def link_by_slug(self, space_id: int, slug: str) -> Link | None:
        return await self.read(links.link_by_slug, space_id, slug)

    async def list_links(self, space_id: int) -> list[Link]:
        return await self.read(links.list_links, space_id)

    async def resolve_slug(self, slug: str) -> Link | None:
        return await self.read(links.resolve_slug, slug)

    # ------------------------------------------------------------------ destinations

    async def create_destination(
        self, space_id: int, new: PreparedDestination, now_ms: int
    ) -> Destination | None:
        return await self.write(destinations.create_destination, space_id, new, now_ms)

    async def get_destination(self, space_id: int, destination_id: int) -> Destination | None:
        return await self.read(destinations.get_destination, space_id, destination_id)

    async def list_destinations(self, space_id: int) -> list[Destination]:
        return await self.read(destinations.list_destinations, space_id)

    async def space_of_destination(self, destination_id: int) -> int | None:
        return await self.read(destinations.space_of_destination, destination_id)

    async def update_destination(
        self, space_id: int, destination_id: int, now_ms: int, **changes: Any
    ) -> Destination | None:
        return await self.write(
            destinations.update_destination, space_id, destination_id, now_ms, **changes
        )

    async def unhealthy_by_kind(self) -> dict[str, int]:
        return await self.read(destinations.unhealthy_by_kind)

    # ------------------------------------------------------------------ deliveries

    async def due_destinations(self, now_ms: int) -> list[tuple[int, DestinationKind]]:
        return await self.read(outbox.due_destinations, now_ms)

    async def claim(
        self,
        destination_id: int,
        owner: str,
        now_ms: int,
        lease_ms: int,
        limit: int,
        *,
        fresh_limit: int = 0,
        fresh_since_ms: int = 0,
    ) -> list[Claimed]:
        return await self.write(
            outbox.claim, destination_id, owner, now_ms, lease_ms, limit,
            fresh_limit=fresh_limit, fresh_since_ms=fresh_since_ms,
        )  # fmt: skip

    async def delivery_contexts(
        self, space_id: int, claimed: list[Claimed], base_url: str
    ) -> dict[int, DeliveryContext]:
        return await self.read(outbox.contexts, space_id, claimed, base_url)

    async def settle_deliveries(
        self,
        owner: str,
        settled: list[Settled],
        now_ms: int,
        unhealthy: list[Unhealthy] | None = None,
    ) -> int:
        return await self.write(outbox.settle, owner, settled, now_ms, unhealthy)

    async def list_deliveries(
        self,
        space_id: int,
        *,
        status: str | None = None,
        destination_id: int | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        return await self.read(
            outbox.list_deliveries,
            space_id,
            status=status,
            destination_id=destination_id,
            limit=limit,
        )

    async def replay(
        self,
        space_id: int,
        *,
        status: str = "failed_permanently",
        destination_id: int | None = None,
        now_ms: int,
    ) -> int:
        return await self.write(
            outbox.replay, space_id, status=status, destination_id=destination_id, now_ms=now_ms
        )

    async def delivery_counts(self, space_id: int) -> dict[str, int]:
        return await self.read(outbox.status_counts, space_id)

    async def outbox_depth(self) -> dict[str, int]:
        return await self.read(outbox.depth)

    async def hasten_retries(self, destination_id: int, now_ms: int, limit: int) -> int:
        return await self.write(outbox.hasten_retries, destination_id, now_ms, limit)

    async def release_leases(self) -> int:
        return await self.write(outbox.release_leases)

    async def give_back(self, space_id: int, delivery_ids: Sequence[int], owner: str) -> int:
        return await self.write(outbox.give_back, space_id, list(delivery_ids), owner)

    # ------------------------------------------------------------------ postbacks

    async def postback_aliases(self, space_id: int) -> Aliases:
        # Here: the postback rules (and their macros) are for the commands that use them.
        from xtracker_server.domain.postbacks import effective_aliases

        return effective_aliases(await self.read(postbacks.alias_rows, space_id))

    async def set_postback_aliases(
        self, space_id: int, changes: list[tuple[str, str, str | None]], now_ms: int
    ) -> None:
        await self.write(postbacks.set_aliases, space_id, changes, now_ms)

    async def list_postback_log(
        self,
        space_id: int,
        *,
        outcome: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[LoggedEntry]:
        return await self.read(
            postbacks.list_log, space_id, outcome=outcome, limit=limit, before_id=before_id
        )

    # ------------------------------------------------------------------ the live tail

    async def tail_top(self) -> Ids:
        return await self.read(tail.tail_top)

    async def tail_poll(self, marks: Marks | None, spaces: Collection[int], now: float) -> Poll:
        return await self.read(tail.tail_poll, marks, spaces, now)

    async def tail_range(self, space_id: int, after: Ids, upto: Ids, limit: int = 500) -> TailBatch:
        return await self.read(tail.tail_range, space_id, after, upto, limit)

    # ------------------------------------------------------------------ deletion

    async def space_counts(self, space_id: int) -> dict[str, int] | None:
        return await self.read(deletion.space_counts, space_id)

    async def mark_space(self, space_id: int, now_ms: int) -> Marked | None:
        return await self.write(deletion.mark_space, space_id, now_ms)

    async def delete_space_batch(self, space_id: int, limit: int) -> Batch:
        return await self.write(deletion.delete_space_batch, space_id, limit)

    async def link_counts(self, space_id: int, slug: str) -> dict[str, int] | None:
        return await self.read(deletion.link_counts, space_id, slug)

    async def slug_of_link(self, space_id: int, link_id: int) -> str | None:
        return await self.read(deletion.slug_of_link, space_id, link_id)

    async def mark_link(self, space_id: int, slug: str, now_ms: int) -> Marked | None:
        return await self.write(deletion.mark_link, space_id, slug, now_ms)

    async def delete_link_batch(self, space_id: int, link_id: int, limit: int) -> Batch:
        return await self.write(deletion.delete_link_batch, space_id, link_id, limit)

    async def destination_counts(self, space_id: int, destination_id: int) -> dict[str, int] | None:
        return await self.read(deletion.destination_counts, space_id, destination_id)

    async def mark_destination(
        self, space_id: int, destination_id: int, now_ms: int
    ) -> Marked | None:
        return await self.write(deletion.mark_destination, space_id, destination_id, now_ms)

    async def delete_destination_batch(
        self, space_id: int, destination_id: int, limit: int
    ) -> Batch:
        return await self.write(deletion.delete_destination_batch, space_id, destination_id, limit)

    async def erasure_counts(self, space_id: int, person: Person) -> dict[str, int] | None:
        return await self.read(erasure.erasure_counts, space_id, person)

    async def erase_person(self, space_id: int, person: Person) -> Erased | None:
        return await self.write(erasure.erase_person, space_id, person)

    async def find_tg_events(self, space_id: int, tg_id: int) -> list[int]:
        return await self.read(erasure.find_tg_events, space_id, tg_id)

    async def erase_events(
        self, space_id: int, ids: Sequence[int], uids: Sequence[str]
    ) -> dict[str, int]:
        return await self.write(erasure.erase_events, space_id, list(ids), list(uids))

    async def find_log_rows(
        self, space_id: int, uids: Sequence[str], tg_id: int | None
    ) -> list[int]:
        return await self.read(erasure.find_log_rows, space_id, list(uids), tg_id)

    async def delete_log_rows(self, space_id: int, ids: Sequence[int]) -> dict[str, int]:
        return await self.write(erasure.delete_log_rows, space_id, list(ids))

    async def unfinished_deletions(self, marked_before_ms: int) -> list[tuple[str, int, int]]:
        return await self.read(deletion.unfinished, marked_before_ms)

    async def applied_removals(self) -> int:
        # What the rollup has applied so far: while it is being built, what it has reached
        # (less is safe: fewer removals pruned), rather than hold its thread for the build.
        try:
            await self.catch_up_reports(budget_s=_APPLIED_WAIT_S)
        except StoreUnavailable as exc:
            if exc.reason is not FaultReason.REBUILDING:
                raise
        return await self.read(rollup_marks.applied_removals)

    async def prune_removals(self, upto: int) -> int:
        return await self.write(deletion.prune_removals, upto)

    async def removals_pending(self) -> bool:
        return await self.read(deletion.removals_pending)

    # ------------------------------------------------------------------ housekeeping

    async def prune_postback_log(self, before_ms: int, limit: int = 1000) -> int:
        return await self.write(postbacks.prune_log, before_ms, limit)

    async def prune_settled_deliveries(self, status: str, before_ms: int, limit: int = 1000) -> int:
        return await self.write(outbox.prune_settled, status, before_ms, limit)

    async def applied_backlog(self) -> int:
        return await self.read(rollup_marks.applied_backlog)

    async def prune_report_backlog(self, upto: int, limit: int = 1000) -> int:
        return await self.write(rollup_marks.prune_backlog, upto, limit)

    async def storage_figures(self) -> StorageFigures:
        # One read, on the reader's thread under the caller's time bound: a stat of a frozen
        # disk (the WAL's size) may hang.
        return await self.read(_storage_figures)


def _storage_figures(conn: sqlite3.Connection) -> StorageFigures:
    # Here: the records are imported by the operations that make them (domain/entities/).
    from xtracker_server.domain.entities import StorageFigures

    return StorageFigures(
        outbox.depth(conn),
        destinations.unhealthy_by_kind(conn),
        wal_bytes=wal.database_wal_bytes(conn),
    )
