"""The storage's health as the server last saw it: what ``/healthz`` answers, and the only
place a storage fault is logged.

A ``FaultTracker`` follows one kind of access (the writer's commits, the readers' queries):
every outcome tells it whether the storage worked. It logs once per change of state: healthy to
failing (with the reason), a failing storage's reason changing, and failing to recovered (how
long it lasted and how many operations failed meanwhile); never once per failed request.

A ``CORRUPT`` fault stays until the server is restarted on a repaired or restored file: other
pages may still work, but the file needs an operator (docs/operations.md).

When no commit has happened for a while, the server writes a probe and reads (the SQLite
backend's ``touch_probe`` and ``schema_version``, store/sqlite/probe.py; housekeeping.py), so that
an idle server notices a storage that
went read-only or stalled before its next request does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xtracker_server.clock import now_ms
from xtracker_server.store.errors import FaultReason

__all__ = ["Fault", "FaultTracker", "StorageHealth"]


if TYPE_CHECKING:
    import logging


def _log() -> logging.Logger:
    """The store's logger; ``logging`` is imported by the first message (a command that
    meets no fault never needs it)."""
    import logging

    return logging.getLogger("xtracker.store")


_OPERATOR_HINT = {
    FaultReason.READ_ONLY: "the file system went read-only: fix it, or restart on a writable one",
    FaultReason.DISK_FULL: "free space on the disk of the database",
    FaultReason.CORRUPT: "the file is damaged: stop the server, restore or recover it"
    " (docs/operations.md, 'A damaged database')",
}


@dataclass(slots=True)
class Fault:
    reason: FaultReason
    detail: str
    since_ms: int  # wall clock, for /healthz
    since: float  # monotonic, for the duration logged on recovery
    failed: int  # operations that failed since


class FaultTracker:
    def __init__(self, what: str) -> None:
        self.what = what  # "writes" or "reads": what the log lines and counts are about
        self.fault: Fault | None = None
        self.last_outcome = time.monotonic()  # when an operation last succeeded or failed

    def idle_s(self) -> float:
        return time.monotonic() - self.last_outcome

    def succeeded(self) -> None:
        self.last_outcome = time.monotonic()
        fault = self.fault
        if fault is None or fault.reason is FaultReason.CORRUPT:
            return
        self.fault = None
        _log().warning(
            "storage recovered (%s): %s lasted %.1f s, %d %s failed meanwhile",
            self.what,
            fault.reason.value,
            self.last_outcome - fault.since,
            fault.failed,
            self.what,
        )

    def failed(self, reason: FaultReason, detail: str, count: int = 1) -> None:
        now = self.last_outcome = time.monotonic()
        fault = self.fault
        if fault is None:
            self.fault = Fault(reason, detail, now_ms(), now, count)
            hint = _OPERATOR_HINT.get(reason)
            _log().error(
                "storage failing (%s): %s: %s%s",
                self.what,
                reason.value,
                detail,
                f" ({hint})" if hint else "",
            )
            return
        fault.failed += count
        # A timeout is a symptom (of a frozen disk, a lock): it never hides a known cause, and a
        # damaged file stays the reason until it is repaired.
        if reason is fault.reason or reason is FaultReason.TIMEOUT:
            return
        if fault.reason is FaultReason.CORRUPT:
            return
        fault.reason, fault.detail = reason, detail
        _log().error("storage still failing (%s): %s: %s", self.what, reason.value, detail)


class StorageHealth:
    """The writes' and the reads' trackers; ``fault`` is what /healthz reports."""

    def __init__(self) -> None:
        self.writes = FaultTracker("writes")
        self.reads = FaultTracker("reads")

    @property
    def fault(self) -> Fault | None:
        return self.writes.fault or self.reads.fault
