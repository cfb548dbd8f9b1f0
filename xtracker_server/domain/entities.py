"""The records the Store protocol (store/api.py) takes and returns: plain, frozen data, the
same whatever backend stores it. Each used to live beside its SQL in ``store/``; the store
modules re-export theirs, so older imports keep working.

Drafts (``InboxDraft``, ``LogEntry``) are what a caller asks to store; the others are what the
store answers. Secrets appear only in the records that show them once (``NewSpace``,
``Rotation``, ``NewToken``) and in a ``Destination`` (needed in clear to sign and send)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xtracker_server.domain.binds import BindAction
from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.domain.dedup import AmountConflict

if TYPE_CHECKING:  # annotations only: the writer process imports this module, keep it light
    from xtracker_server.domain.destinations import DestinationKind
    from xtracker_server.domain.links import LinkKind, LinkSpec

__all__ = [
    "POSTBACK_OUTCOMES",
    "AttemptRecord",
    "BackupDone",
    "Batch",
    "BindOutcome",
    "Claimed",
    "Credential",
    "DeliveryRow",
    "Destination",
    "DestinationHealth",
    "Erased",
    "InboxDraft",
    "InboxEvent",
    "InboxOutcome",
    "IngestToken",
    "Link",
    "LogEntry",
    "LoggedEntry",
    "Marked",
    "NewSpace",
    "NewToken",
    "RestoreDone",
    "Revocation",
    "Rotation",
    "Settled",
    "Space",
    "StorageFigures",
    "Unhealthy",
]

# ----------------------------------------------------------------------------- spaces


@dataclass(frozen=True)
class Space:
    id: int
    name: str
    created_ms: int


@dataclass(frozen=True)
class NewSpace:
    """A space just created, with its secrets: the only time they are ever shown."""

    space: Space
    bearer: str
    ingest_token: str


@dataclass(frozen=True)
class Credential:
    space_id: int | None
    kind: CredentialKind
    expires_ms: int | None
    name: str | None = None  # an ingest token's name


@dataclass(frozen=True)
class Rotation:
    space_id: int
    kind: CredentialKind
    secret: str
    previous_valid_until_ms: int | None
    name: str | None = None  # an ingest token's name


@dataclass(frozen=True)
class Revocation:
    """Secrets ended now. ``hashes`` lets the server drop them from its cache at once."""

    space_id: int
    kind: CredentialKind
    name: str | None
    hashes: tuple[bytes, ...]

    @property
    def revoked(self) -> int:
        return len(self.hashes)


@dataclass(frozen=True)
class NewToken:
    """An ingest token just added: the only time its secret is shown."""

    space_id: int
    name: str
    secret: str


@dataclass(frozen=True)
class IngestToken:
    """A live ingest token as listed: never its secret. ``expires_ms`` is set while a
    rotated-out token is in its grace period."""

    name: str
    hint: str
    created_ms: int
    expires_ms: int | None
    last_postback_ms: int | None = None


# ----------------------------------------------------------------------------- links


@dataclass(frozen=True)
class Link:
    id: int
    space_id: int
    slug: str
    spec: LinkSpec
    created_ms: int
    updated_ms: int

    @property
    def kind(self) -> LinkKind:
        return self.spec.kind

    @property
    def enabled(self) -> bool:
        return self.spec.enabled


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class InboxDraft:
    space_id: int
    dedup_key: bytes
    event: str
    uid: str | None
    tg_id: int | None
    eid: str | None
    value: str | None
    currency: str | None
    occurred_at_ms: int
    received_ms: int
    source: str  # "api" (POST /events) or "postback" (GET /e)
    test: bool = False  # a test event: stored and shown, never counted nor delivered


@dataclass(frozen=True)
class InboxOutcome:
    inbox_id: int
    duplicate: bool
    uid: str | None  # after attribution; None while unattributed
    deliveries: int = 0  # outbox rows created for it
    conflict: AmountConflict | None = None  # a duplicate naming another amount than the stored


@dataclass(frozen=True)
class InboxEvent:
    id: int
    event: str
    uid: str | None
    tg_id: int | None
    eid: str | None
    value: str | None
    currency: str | None
    occurred_at_ms: int
    received_ms: int
    source: str
    attributed_by: str | None


@dataclass(frozen=True)
class BindOutcome:
    action: BindAction
    matched: bool  # a click with this uid exists in the space
    attributed: int = 0  # earlier events of this user now carrying the uid


# ----------------------------------------------------------------------------- destinations


@dataclass(frozen=True)
class Destination:
    id: int
    space_id: int
    kind: DestinationKind
    name: str
    enabled: bool
    config: dict[str, Any]
    #: The webhook signing secret or the CAPI access token. Needed in clear to sign and send;
    #: never returned by the API or the CLI after creation.
    secret: str | None
    event_map: dict[str, str]
    proxy: str | None
    health_reason: str | None  # None: healthy
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker leased (``claim``): it alone may settle it until the lease ends."""

    id: int
    space_id: int
    destination_id: int
    inbox_id: int
    event_id: str
    event_name: str
    attempts: int  # including the one just claimed
    age_from_ms: int


@dataclass(frozen=True)
class AttemptRecord:
    delivery_id: int
    space_id: int
    at_ms: int
    status_code: int | None
    latency_ms: int
    outcome: str
    error: str | None
    excerpt: str | None


@dataclass(frozen=True)  # no slots: a slotted dataclass pickles slowly (it travels to the writer)
class Settled:
    """A claimed delivery's new state (the worker's retry decision) and the attempt that led
    there (``Store.settle_deliveries``)."""

    delivery_id: int
    space_id: int
    status: str  # an outbox status: pending, retrying, sent, failed_permanently
    next_attempt_ms: int | None  # None: unchanged
    last_status: int | None  # the HTTP status, None without an answer
    last_error: str | None
    refund_attempt: bool  # the attempt does not count (the destination was at fault)
    outcome: str  # the verdict's Outcome value
    latency_ms: int
    excerpt: str | None


@dataclass(frozen=True)
class Unhealthy:
    """A destination an answer said is broken (flagged with ``reason``). ``as_of_ms``: the
    destination's ``updated_ms`` when the request was made: changed since (a new token, enabled
    again), the answer to its old settings does not flag it."""

    space_id: int
    destination_id: int
    reason: str
    as_of_ms: int | None = None


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    destination_id: int
    inbox_id: int
    event_id: str
    event_name: str
    status: str
    attempts: int
    next_attempt_ms: int
    created_ms: int
    sent_ms: int | None
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class DestinationHealth:
    id: int
    name: str
    kind: str
    enabled: bool
    health_reason: str | None
    counts: dict[str, int]  # status -> deliveries, those pruned by retention included
    last_success_ms: int | None
    last_error: str | None
    last_error_ms: int | None
    recent_attempts: int  # attempts in the recent window
    recent_failures: int  # of which did not deliver
    median_latency_ms: int | None  # over the recent attempts that got an answer


# ----------------------------------------------------------------------------- postbacks

#: What became of a postback: a ``LogEntry``'s ``outcome``.
POSTBACK_OUTCOMES: tuple[str, ...] = ("queued", "duplicate", "ignored", "rejected")


@dataclass(frozen=True)
class LogEntry:
    """One row of the postback log. ``query`` and ``body`` are already masked; ``value`` and
    ``currency`` are what the call sent. ``click_known``: the uid belongs to a click of the
    space (not "attributed", which means "has a uid"). ``conflict``: a duplicate that named
    another amount than the stored event."""

    space_id: int
    at_ms: int
    ip: str | None
    method: str
    query: str
    body: str | None
    outcome: str = "rejected"
    status: str | None = None
    event: str | None = None
    uid: str | None = None
    value: str | None = None
    currency: str | None = None
    eid: str | None = None
    inbox_id: int | None = None
    click_known: bool | None = None
    error: str | None = None
    detail: str | None = None
    conflict: AmountConflict | None = None
    token_name: str | None = None  # which of the space's ingest tokens the call used
    test: bool = False  # sent as a test (``test=1``): stored, never counted


@dataclass(frozen=True)
class LoggedEntry(LogEntry):
    id: int = 0


# ----------------------------------------------------------------------------- deletion


@dataclass(frozen=True)
class Marked:
    """A deletion just marked: what the mark itself removed (a space's credentials), and the
    landings that went (for the link cache)."""

    target_id: int
    removed: dict[str, int] = field(default_factory=dict)
    slugs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Batch:
    removed: dict[str, int]
    done: bool  # nothing is left to delete


@dataclass(frozen=True)
class Erased:
    removed: dict[str, int]
    uids: tuple[str, ...]  # the person's uids (by tg_id: every uid bound to them)


# ----------------------------------------------------------------------------- backups


@dataclass(frozen=True, slots=True)
class BackupDone:
    path: str
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RestoreDone:
    path: str
    events: int
    clicks: int
    schema: int  # the backup's schema version (migrated to this xtracker's)
    generation: str
    deliveries_due: int  # not settled in the backup: the worker sends them (again)
    leases_released: int  # of those, claimed by a worker when the backup was made
    seconds: float


# ----------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class StorageFigures:
    """What the database holds, across spaces, at one moment (``/metrics``)."""

    outbox: Mapping[str, int]  # deliveries not settled yet, by status
    unhealthy: Mapping[str, int]  # enabled destinations flagged unhealthy, by kind
    wal_bytes: int | None = None  # the size of the write-ahead log file (None: none)
