"""The ``Store`` protocol: every storage operation of XTRACKER as a named, typed async call.
What a backend implements and the rules it keeps are in store/api.py, the one module the rest
of the server imports (it re-exports ``Store``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

# Only the defaults above are needed when the module runs: the annotations are strings
# (``from __future__ import annotations``), and importing every domain module here would make
# each command's start-up pay for all of them.
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import date
    from decimal import Decimal

    from xtracker_server.domain.binds import BindKind
    from xtracker_server.domain.clicks import ClickDraft
    from xtracker_server.domain.costs import CostEntry, CostLevel, Rate
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
        DestinationHealth,
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
    from xtracker_server.domain.groups import GroupCounts, GroupQuery
    from xtracker_server.domain.link_input import LinkSpec
    from xtracker_server.domain.outbound import DeliveryContext
    from xtracker_server.domain.postbacks import Aliases
    from xtracker_server.domain.reports import FunnelCounts, FunnelMode, LinkRow, Window
    from xtracker_server.domain.tail import Ids, Marks, Poll, TailBatch
    from xtracker_server.domain.unrecorded import UnrecordedCount
    from xtracker_server.store.health import StorageHealth

__all__ = ["Store"]


class Store(Protocol):
    """The storage of one XTRACKER database. ``open()`` before use, ``close()`` after."""

    #: The schema version, once open.
    schema: int
    #: What the last writes and reads showed (``/healthz``).
    health: StorageHealth

    # ------------------------------------------------------------------ life cycle, health

    async def open(self) -> None:
        """Create or migrate the database, then take writes. Raises ``RestoreInProgress``
        while a restore replaces it."""

    async def close(self) -> None:
        """Finish every write submitted, then let the database go."""

    async def probe(self) -> None:
        """One write and one read, for their outcome alone (an idle server's health)."""

    async def refresh_stats(self) -> list[str]:
        """Refresh the query planner's statistics where they are missing or stale (a bounded
        amount of work each); returns what was analysed (housekeeping.py, now and then)."""

    def writer_running(self) -> bool:
        """Whether writes are taken now (False while a dead writer is replaced)."""

    def writer_restarts(self) -> int:
        """Writers started again after one died."""

    async def backup(self, target: str, *, force: bool = False) -> BackupDone:
        """A consistent copy of the database at ``target`` (refused if it exists, unless
        ``force``), made while writes go on. Raises ``BackupError``."""

    # ------------------------------------------------------------------ ingress

    async def record_event(self, draft: InboxDraft) -> InboxOutcome:
        """Store an event unless its dedup key is known (then: the original, ``duplicate``);
        attribute it by its Telegram user's bind; fan it out to the space's destinations."""

    async def record_events(self, drafts: list[InboxDraft]) -> list[InboxOutcome]:
        """``record_event`` for each draft, in order, committed together: all of them or none
        (a ``StoreUnavailable`` means none). A repeat within ``drafts`` is a duplicate of the
        first."""

    async def record_click(self, draft: ClickDraft) -> str:
        """Store a click; returns its uid (another one if the drafted uid was taken)."""

    async def record_kept_clicks(self, drafts: list[ClickDraft]) -> int:
        """Store clicks kept while storage failed, under the uids their visitors got; returns
        how many were new (a click stored before is not stored twice)."""

    async def click_seen(self, space_id: int, link_id: int, uid: str, since_ms: int) -> bool:
        """Whether ``uid`` is a click on this link made since ``since_ms`` (a repeat visit)."""

    async def bind(
        self,
        space_id: int,
        uid: str,
        tg_id: int,
        now_ms: int,
        kind: BindKind = ...,  # BindKind.BEARER
    ) -> BindOutcome:
        """Bind ``uid`` to the Telegram user ``tg_id`` by ``domain.binds``; safe to retry."""

    async def record_postback(
        self, draft: InboxDraft, entry: LogEntry
    ) -> tuple[InboxOutcome, bool]:
        """``record_event`` and its postback log row in one commit; also whether the uid has
        a click in the space."""

    async def log_postback(self, entry: LogEntry) -> int:
        """Write one postback log row (a call that stored no event); returns its id."""

    async def list_events(self, space_id: int, *, limit: int = 100) -> list[InboxEvent]:
        """The space's most recent events, newest first."""

    # ------------------------------------------------------------------ spaces, credentials

    async def create_space(self, name: str, now_ms: int) -> NewSpace:
        """A new space with its bearer secret and ``default`` ingest token (shown once)."""

    async def list_spaces(self) -> list[Space]:
        """Every live space, by id."""

    async def get_space(self, space_id: int) -> Space | None: ...

    async def find_credential(self, secret_hash: bytes, now_ms: int) -> Credential | None:
        """The live credential with this hash (bearer, ingest token, operator), if any."""

    async def rotate_credential(
        self, space_id: int, kind: CredentialKind, now_ms: int, name: str | None = None
    ) -> Rotation | None:
        """A new secret; the previous one keeps working for the grace period. None if there
        is no such space. Raises ``NoSuchToken`` for an ingest token name it does not have."""

    async def revoke_previous(
        self, space_id: int, kind: CredentialKind, now_ms: int, name: str | None = None
    ) -> Revocation | None:
        """End the grace period of the rotated-out secrets now."""

    async def add_ingest_token(self, space_id: int, name: str, now_ms: int) -> NewToken | None:
        """A new named ingest token (shown once). Raises ``TokenNameTaken``."""

    async def list_ingest_tokens(self, space_id: int, now_ms: int) -> list[IngestToken]:
        """The space's live ingest tokens, each with the time of its last logged postback."""

    async def revoke_ingest_token(self, space_id: int, name: str, now_ms: int) -> Revocation | None:
        """End every live secret of the token ``name`` now."""

    async def is_ingest_token_of(self, space_id: int, token: str, now_ms: int) -> bool: ...

    async def has_admin_token(self) -> bool: ...

    async def reset_admin_token(self, now_ms: int) -> str:
        """A new operator token (shown once); every earlier one stops working."""

    async def allowed_currencies(self, space_id: int) -> tuple[str, ...] | None:
        """The space's own currency codes (empty: any); None if there is no such space."""

    async def set_allowed_currencies(self, space_id: int, codes: tuple[str, ...]) -> bool: ...

    async def sub_id_params(self, space_id: int) -> tuple[str, ...] | None:
        """The query parameters the space declares as sub-ids (recorded with each click of
        the landing); None if there is no such space."""

    async def set_sub_id_params(self, space_id: int, names: tuple[str, ...]) -> bool:
        """Replace the space's sub-id parameters (checked by ``domain.clicks``); False if
        there is no such space."""

    async def token_binds_allowed(self, space_id: int) -> bool: ...

    async def set_token_binds(self, space_id: int, allowed: bool) -> bool: ...

    # ------------------------------------------------------------------ links

    async def create_link(self, space_id: int, slug: str, spec: LinkSpec, now_ms: int) -> Link:
        """Raises ``SlugTaken`` (slugs are unique across spaces: they are public URLs)."""

    async def update_link(
        self, space_id: int, slug: str, changes: dict[str, Any], now_ms: int
    ) -> Link | None: ...

    async def link_by_slug(self, space_id: int, slug: str) -> Link | None: ...

    async def list_links(self, space_id: int) -> list[Link]: ...

    async def resolve_slug(self, slug: str) -> Link | None:
        """The link behind a public landing URL, in whatever space it is."""

    # ------------------------------------------------------------------ destinations

    async def create_destination(
        self, space_id: int, new: PreparedDestination, now_ms: int
    ) -> Destination | None: ...

    async def get_destination(self, space_id: int, destination_id: int) -> Destination | None: ...

    async def list_destinations(self, space_id: int) -> list[Destination]: ...

    async def space_of_destination(self, destination_id: int) -> int | None:
        """The space of a destination the operator names by id alone."""

    async def update_destination(
        self, space_id: int, destination_id: int, now_ms: int, **changes: Any
    ) -> Destination | None:
        """Change columns (name, enabled, config, secret, event_map, proxy, health_reason)."""

    async def unhealthy_by_kind(self) -> dict[str, int]:
        """Enabled destinations flagged unhealthy, by kind, across spaces (operator)."""

    # ------------------------------------------------------------------ deliveries

    async def due_destinations(self, now_ms: int) -> list[tuple[int, DestinationKind]]:
        """Enabled, healthy destinations with deliveries due (across spaces: the worker)."""

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
        """Lease up to ``limit`` due deliveries of a destination, oldest due first; no two
        owners hold the same delivery at once. Of them, up to ``fresh_limit`` are taken first
        from those due after ``fresh_since_ms`` (the drain order of domain/drain.py)."""

    async def delivery_contexts(
        self, space_id: int, claimed: list[Claimed], base_url: str
    ) -> dict[int, DeliveryContext]:
        """What each claimed delivery sends, read now (by delivery id)."""

    async def settle_deliveries(
        self,
        owner: str,
        settled: list[Settled],
        now_ms: int,
        unhealthy: list[Unhealthy] | None = None,
    ) -> int:
        """Write each delivery's new state while ``owner`` still holds its lease (a lease
        another worker took over is left to it) and its attempt; flag the destinations an
        answer said are broken. Returns how many were still leased to ``owner``."""

    async def list_deliveries(
        self,
        space_id: int,
        *,
        status: str | None = None,
        destination_id: int | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]: ...

    async def replay(
        self,
        space_id: int,
        *,
        status: str = "failed_permanently",
        destination_id: int | None = None,
        now_ms: int,
    ) -> int:
        """Make settled deliveries due again now; returns how many."""

    async def delivery_counts(self, space_id: int) -> dict[str, int]:
        """The space's deliveries by status."""

    async def outbox_depth(self) -> dict[str, int]:
        """Deliveries not settled yet, by status, across spaces (operator)."""

    async def hasten_retries(self, destination_id: int, now_ms: int, limit: int) -> int:
        """Up to ``limit`` of a destination's deliveries waiting out a backoff an outage caused
        (no answer or a 5xx) are due at once, in their creation order; returns how many."""

    async def release_leases(self) -> int:
        """Release every lease (a restored database's); returns how many."""

    async def give_back(self, space_id: int, delivery_ids: Sequence[int], owner: str) -> int:
        """Deliveries ``owner`` claimed and will not send: their lease ends and the claim's
        attempt is not counted (due again at once, as before the claim). Rows another owner
        holds, or settled, are left. Returns how many were given back."""

    # ------------------------------------------------------------------ postbacks

    async def postback_aliases(self, space_id: int) -> Aliases:
        """The space's effective aliases (the defaults with its changes)."""

    async def set_postback_aliases(
        self, space_id: int, changes: list[tuple[str, str, str | None]], now_ms: int
    ) -> None:
        """Apply ``(kind, alias, target)`` changes, all or none (None removes an alias)."""

    async def list_postback_log(
        self,
        space_id: int,
        *,
        outcome: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[LoggedEntry]:
        """The space's postbacks, newest first, at most ``limit``; with ``before_id``, only
        those with a lower id: the next page after a page whose last row had that id."""

    # ------------------------------------------------------------------ reports

    async def catch_up_reports(
        self, budget_s: float | None = None, *, cube_may_lag: bool = False,
        background: bool = False,
    ) -> int:  # fmt: skip
        """Bring the report rollup up to every commit so far; returns the events it fed.
        ``budget_s``: work about that long at most, keeping what was done, and raise
        ``StoreUnavailable`` with reason ``REBUILDING`` if the rollup is still behind (it is
        being built): a report request answers 503 rather than wait for a whole build.
        ``cube_may_lag`` (a report's): return once the steps are caught up if the report cube
        is being built (the setting turned on, a new cube format): the reports read without
        it meanwhile, as they would with the setting off. ``background`` (housekeeping's):
        paced so as to hold up the writer least, rather than to finish soonest."""

    async def funnel_counts(
        self,
        space_id: int,
        window: Window,
        *,
        link_id: int | None = None,
        mode: FunnelMode = ...,  # FunnelMode.ACTIVITY
    ) -> FunnelCounts: ...

    async def link_rows(self, space_id: int, window: Window) -> list[LinkRow]: ...

    async def deposit_currencies(self, space_id: int, window: Window) -> dict[str, int]: ...

    async def series_counts(
        self,
        space_id: int,
        step: str,
        starts: Sequence[int],
        to_ms: int,
        *,
        link_id: int | None = None,
    ) -> list[int]: ...

    async def series_revenue(
        self,
        space_id: int,
        currency: str,
        starts: Sequence[int],
        to_ms: int,
        *,
        link_id: int | None = None,
        reversed_only: bool = False,
    ) -> list[Decimal]:
        """Gross revenue in ``currency`` per bucket; ``reversed_only``: the part of it that
        was reversed (``deposit.reversed``), in the deposits' buckets."""

    async def group_counts(self, space_id: int, query: GroupQuery) -> list[GroupCounts]:
        """One GroupCounts per group with any click or counted event in the window (the whole
        space as one group with key () when query.by is empty), in no particular order. Uids
        without a click in the space are in no group (the services report them apart, as the
        funnel's `without_click` line). Test events never count. With the report cube on
        (XTRACKER_REPORT_CUBE), what it answers from the cube is the rollup as of the last
        ``catch_up_reports``, as for the funnel."""

    async def delivery_health(self, space_id: int, now_ms: int) -> list[DestinationHealth]: ...

    async def add_unrecorded(self, counts: list[UnrecordedCount]) -> None:
        """Add landing visits that were not recorded as clicks to the stored tally."""

    # ------------------------------------------------------------------ costs and rates

    async def put_costs(
        self, space_id: int, entries: list[CostEntry], now_ms: int
    ) -> tuple[int, int] | None:
        """Set each cost, replacing the one of its (day, level, object), all or none:
        ``(new, replaced)``; None if there is no such space."""

    async def delete_cost(
        self, space_id: int, day: date, level: CostLevel, object_id: str
    ) -> bool: ...

    async def list_costs(
        self, space_id: int, from_day: date, to_day: date, level: CostLevel | None = None
    ) -> list[CostEntry]:
        """The costs of the days ``[from_day, to_day)``, by day, level and object."""

    async def set_rate(self, space_id: int, rate: Rate, now_ms: int) -> bool:
        """Set a pair's rate on a day; False if there is no such space."""

    async def list_rates(self, space_id: int) -> list[Rate]: ...

    # ------------------------------------------------------------------ the live tail

    async def tail_top(self) -> Ids:
        """The newest row id of each followed table (clicks, events, delivery attempts)."""

    async def tail_poll(self, marks: Marks | None, spaces: Collection[int], now: float) -> Poll:
        """The rows committed since ``marks`` (None: start at "now") of the ``spaces``, and
        the marks to poll from next. ``now``: monotonic seconds."""

    async def tail_range(
        self, space_id: int, after: Ids, upto: Ids, limit: int = 500
    ) -> TailBatch: ...

    # ------------------------------------------------------------------ deletion

    async def space_counts(self, space_id: int) -> dict[str, int] | None: ...

    async def mark_space(self, space_id: int, now_ms: int) -> Marked | None: ...

    async def delete_space_batch(self, space_id: int, limit: int) -> Batch: ...

    async def link_counts(self, space_id: int, slug: str) -> dict[str, int] | None: ...

    async def slug_of_link(self, space_id: int, link_id: int) -> str | None: ...

    async def mark_link(self, space_id: int, slug: str, now_ms: int) -> Marked | None: ...

    async def delete_link_batch(self, space_id: int, link_id: int, limit: int) -> Batch: ...

    async def destination_counts(
        self, space_id: int, destination_id: int
    ) -> dict[str, int] | None: ...

    async def mark_destination(
        self, space_id: int, destination_id: int, now_ms: int
    ) -> Marked | None: ...

    async def delete_destination_batch(
        self, space_id: int, destination_id: int, limit: int
    ) -> Batch: ...

    async def erasure_counts(self, space_id: int, person: Person) -> dict[str, int] | None: ...

    async def erase_person(self, space_id: int, person: Person) -> Erased | None: ...

    async def find_tg_events(self, space_id: int, tg_id: int) -> list[int]: ...

    async def erase_events(
        self, space_id: int, ids: Sequence[int], uids: Sequence[str]
    ) -> dict[str, int]: ...

    async def find_log_rows(
        self, space_id: int, uids: Sequence[str], tg_id: int | None
    ) -> list[int]: ...

    async def delete_log_rows(self, space_id: int, ids: Sequence[int]) -> dict[str, int]: ...

    async def unfinished_deletions(self, marked_before_ms: int) -> list[tuple[str, int, int]]:
        """Deletions marked before then and not finished: (kind, space_id, target_id)."""

    async def applied_removals(self) -> int:
        """How far the report rollup applied what deletions removed (after a catch-up)."""

    async def prune_removals(self, upto: int) -> int: ...

    async def removals_pending(self) -> bool: ...

    # ------------------------------------------------------------------ housekeeping

    async def prune_postback_log(self, before_ms: int, limit: int = 1000) -> int:
        """Delete up to ``limit`` log rows older than ``before_ms`` (any space)."""

    async def prune_settled_deliveries(self, status: str, before_ms: int, limit: int = 1000) -> int:
        """Delete up to ``limit`` deliveries settled as ``status`` (``sent`` or
        ``failed_permanently``) before ``before_ms``, oldest first, any space, with their
        attempts (their destination's delivery health still counts them). Unsettled deliveries
        are never pruned, nor the newest delivery or the delivery of the newest attempt."""

    async def applied_backlog(self) -> int:
        """How far the report rollup applied its backlog (as it is now: no catch-up first)."""

    async def prune_report_backlog(self, upto: int, limit: int = 1000) -> int:
        """Delete up to ``limit`` backlog entries the rollup applied (up to ``upto``, from
        ``applied_backlog``), oldest first; the newest one stays."""

    async def storage_figures(self) -> StorageFigures:
        """What ``/metrics`` shows of the database, across spaces, in one read: deliveries
        not settled by status, enabled destinations flagged unhealthy by kind, the size of the
        write-ahead log (None where there is none)."""
