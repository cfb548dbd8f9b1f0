"""The errors of the Store protocol (store/api.py), the same whatever backend raises them: the
storage could not do it (``StoreUnavailable`` with a ``FaultReason``), or what was asked
conflicts with what is stored (a slug taken, a token name taken, no such token), or a backup
cannot be made."""

from __future__ import annotations

from enum import Enum

from xtracker_server.exceptions import XTrackerServerError

__all__ = [
    "BackupError",
    "FaultReason",
    "NoSuchToken",
    "SlugTaken",
    "StoreUnavailable",
    "TokenNameTaken",
    "retry_after_s",
]


class FaultReason(str, Enum):
    """Why the storage could not do what was asked (the ``reason`` of a 503 and of /healthz)."""

    READ_ONLY = "read_only"  # the file or its file system cannot be written
    DISK_FULL = "disk_full"
    IO_ERROR = "io_error"
    LOCKED = "locked"  # another connection held the lock past the busy timeout
    CORRUPT = "corrupt"  # the file is damaged: restore or recover it (docs/operations.md)
    WRITER_DOWN = "writer_down"  # the writer process is being replaced
    TIMEOUT = "timeout"  # not done within XTRACKER_WRITE_TIMEOUT_S (a frozen disk, a long lock)
    COMMIT_FAILED = "commit_failed"  # the commit failed for another reason (see the log)
    # the report rollup is being built (a new rollup, a rebuild, the report cube turned on):
    # a report answers once it is done; nothing is wrong with the storage
    REBUILDING = "rebuilding"


class StoreUnavailable(XTrackerServerError, RuntimeError):
    """The storage could not do it: a write was not acknowledged (after a ``TIMEOUT`` it may
    still commit; a retried event is then answered ``duplicate``), a read was not answered."""

    def __init__(self, reason: FaultReason, detail: str) -> None:
        super().__init__(reason, detail)  # both in args: it pickles (writer process -> server)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


#: Seconds a client is asked to wait (Retry-After): short for what passes on its own, longer
#: for what needs an operator.
_RETRY_AFTER_S = {
    FaultReason.TIMEOUT: 2,
    FaultReason.LOCKED: 2,
    FaultReason.WRITER_DOWN: 1,
    FaultReason.COMMIT_FAILED: 2,
    FaultReason.IO_ERROR: 10,
    FaultReason.READ_ONLY: 30,
    FaultReason.DISK_FULL: 30,
    FaultReason.CORRUPT: 60,
    FaultReason.REBUILDING: 10,
}


def retry_after_s(reason: FaultReason) -> int:
    return _RETRY_AFTER_S[reason]


class SlugTaken(XTrackerServerError, ValueError):
    """Another link has the slug (slugs are unique across spaces: they are public URLs)."""


class TokenNameTaken(XTrackerServerError, ValueError):
    """A live ingest token of the space has the name."""


class NoSuchToken(XTrackerServerError, LookupError):
    """The space has no live ingest token of that name."""


class BackupError(XTrackerServerError):
    """A backup or restore that cannot be done; the message says why and what to do."""
