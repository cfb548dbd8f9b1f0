"""The postback log: an entry to store (``LogEntry``), one as stored (``LoggedEntry``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the writer process imports this module, keep it light
    from xtracker_server.domain.dedup import AmountConflict

__all__ = ["POSTBACK_OUTCOMES", "LogEntry", "LoggedEntry"]


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
