"""The records the Store protocol (store/api.py) takes and returns: plain, frozen data, the
same whatever backend stores it. Each used to live beside its SQL in ``store/``; the store
modules re-export theirs, so older imports keep working.

Drafts (``InboxDraft``, ``LogEntry``) are what a caller asks to store; the others are what the
store answers. Secrets appear only in the records that show them once (``NewSpace``,
``Rotation``, ``NewToken``) and in a ``Destination`` (needed in clear to sign and send).

One module per area (``spaces``, ``credentials``, ``links``, ``events``, ``deliveries``,
``postbacks``, ``deletion``, ``storage``). ``from xtracker_server.domain.entities import
Space`` imports the module of ``Space`` alone (``__getattr__`` below): a frozen dataclass costs
about 1 ms to build, and a command that lists spaces should not build all 27
(tests/server/test_cli_imports.py)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xtracker_server.domain.entities.credentials import (
        Credential,
        IngestToken,
        NewToken,
        Revocation,
        Rotation,
    )
    from xtracker_server.domain.entities.deletion import Batch, Erased, Marked
    from xtracker_server.domain.entities.deliveries import (
        AttemptRecord,
        Claimed,
        DeliveryRow,
        Destination,
        DestinationHealth,
        Settled,
        Unhealthy,
    )
    from xtracker_server.domain.entities.events import (
        BindOutcome,
        InboxDraft,
        InboxEvent,
        InboxOutcome,
    )
    from xtracker_server.domain.entities.links import Link
    from xtracker_server.domain.entities.postbacks import POSTBACK_OUTCOMES, LogEntry, LoggedEntry
    from xtracker_server.domain.entities.spaces import NewSpace, Space
    from xtracker_server.domain.entities.storage import BackupDone, RestoreDone, StorageFigures

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

#: The module of each record, under this package.
_MODULE_OF: dict[str, str] = {
    **dict.fromkeys(("Batch", "Erased", "Marked"), "deletion"),
    **dict.fromkeys(
        (
            "AttemptRecord",
            "Claimed",
            "DeliveryRow",
            "Destination",
            "DestinationHealth",
            "Settled",
            "Unhealthy",
        ),
        "deliveries",
    ),
    **dict.fromkeys(("BindOutcome", "InboxDraft", "InboxEvent", "InboxOutcome"), "events"),
    **dict.fromkeys(("Link",), "links"),
    **dict.fromkeys(("LogEntry", "LoggedEntry", "POSTBACK_OUTCOMES"), "postbacks"),
    **dict.fromkeys(
        ("Credential", "IngestToken", "NewToken", "Revocation", "Rotation"), "credentials"
    ),
    **dict.fromkeys(("NewSpace", "Space"), "spaces"),
    **dict.fromkeys(("BackupDone", "RestoreDone", "StorageFigures"), "storage"),
}


def __getattr__(name: str) -> Any:
    """``name`` from its area's module, imported on first use (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup finds it without this function
    return value
