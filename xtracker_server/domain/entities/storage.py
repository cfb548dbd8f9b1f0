"""The database as a whole: backups, restores and the figures of ``/metrics``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["BackupDone", "RestoreDone", "StorageFigures"]


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
