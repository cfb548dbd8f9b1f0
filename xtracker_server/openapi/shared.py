"""The parameters and answers that several areas' operations share: the ids in admin paths,
``dry_run`` and ``limit``, an event's conflicting amount, and what a deletion removed."""

from __future__ import annotations

from collections.abc import Mapping

from xtracker_server.openapi.operation import Answer, Param, json_answer
from xtracker_server.openapi.schema import (
    BOOL,
    COUNT,
    INT,
    STR,
    Schema,
    answer,
    closed,
    enum,
    nullable,
)
from xtracker_wire import MAX_TG_ID

__all__ = [
    "CONFLICT",
    "DESTINATION_ID",
    "DRY_RUN",
    "LIMIT",
    "SLUG",
    "SPACE_ID",
    "TG_ID",
    "deleted",
]

SPACE_ID = Param(
    "space_id", {"type": "integer", "minimum": 1}, "the space's id", required=True, where="path"
)
DESTINATION_ID = Param(
    "destination_id",
    {"type": "integer", "minimum": 1},
    "the destination's id",
    required=True,
    where="path",
)
SLUG = Param("slug", STR, "the link's slug", required=True, where="path")
TG_ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_TG_ID - 1}
DRY_RUN = Param(
    "dry_run",
    enum(["1", "0", "true", "false", "yes", "no"]),
    "1, true or yes: only count what would be removed; 0, false, no or absent: delete (any"
    " case); anything else is 422",
)
LIMIT = Param("limit", {"type": "integer", "minimum": 1}, "default 100, at most 1000")

#: The stored event's amount, on a duplicate that names another one (domain/dedup.py).
CONFLICT = {
    "description": "the stored event's amount and currency (null: stored without an amount)",
    **closed({"value": nullable(STR), "currency": nullable(STR)}),
}


def deleted(head: Mapping[str, Schema], keys: tuple[str, ...]) -> dict[int, Answer]:
    """The answers of a deletion: ``space_id``, ``head``, ``dry_run`` and the count of each of
    ``keys`` removed (``domain/deletion.py``)."""
    removed = {
        "description": "what it removed, or would remove (dry_run): every count, zeros included"
        " (docs/api.md#deleting-and-erasing)",
        **closed({k: COUNT for k in keys}),
    }
    return {
        200: json_answer(
            "What it removed, or with dry_run what it would remove.",
            answer({"space_id": INT, **head, "dry_run": BOOL, "removed": removed}),
        )
    }
