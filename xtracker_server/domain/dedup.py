"""The inbox's idempotency key (ARCHITECTURE.md §4)."""

from __future__ import annotations

import hashlib


def dedup_key(
    space_id: int,
    uid: str | None,
    tg_id: int | None,
    event: str,
    eid: str | None,
    occurred_at_ms: int,
) -> bytes:
    """``sha256(space_id|uid|event|eid or occurred_at_ms)``.

    An event sent with only ``tg_id`` stands in for its uid as ``tg:<id>``: the key must depend
    only on what the request said, never on what a bind resolved it to, or a retry after a
    bind would count twice.
    """
    who = uid if uid is not None else (f"tg:{tg_id}" if tg_id is not None else "")
    discriminator = eid if eid is not None else str(occurred_at_ms)
    # Free-form parts carry their length, so a "|" inside a uid or eid cannot forge another key.
    parts = f"{space_id}|{len(who)}:{who}|{event}|{len(discriminator)}:{discriminator}"
    return hashlib.sha256(parts.encode("utf-8", "surrogatepass")).digest()
