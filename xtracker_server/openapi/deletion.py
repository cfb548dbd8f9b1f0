"""Deleting a whole space and erasing one person's data (docs/api.md#deleting-and-erasing);
a link's and a destination's deletions are with their areas."""

from __future__ import annotations

from xtracker_server.domain.deletion import ERASURE_KEYS, SPACE_KEYS
from xtracker_server.openapi.errors import ADMIN, JSON_BODY
from xtracker_server.openapi.operation import Operation
from xtracker_server.openapi.schema import BOOL, INT, STR, Schema, closed
from xtracker_server.openapi.shared import DRY_RUN, SPACE_ID, TG_ID, deleted
from xtracker_wire import MAX_UID_LEN

__all__ = ["OPERATIONS"]

_ERASE_UID: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_UID_LEN}
_ERASE_TG_ID: Schema = {
    "anyOf": [
        TG_ID,
        {"type": "string", "pattern": "^[0-9]+$"},
    ]
}
_ERASE_BODY: Schema = {
    "description": "exactly one of uid and tg_id; dry_run: only count",
    "oneOf": [
        closed({"uid": _ERASE_UID}, {"dry_run": BOOL}),
        closed({"tg_id": _ERASE_TG_ID}, {"dry_run": BOOL}),
    ],
}
_PERSON: Schema = {"anyOf": [closed({"uid": STR}), closed({"tg_id": INT})]}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="delete_space",
        route="DELETE /admin/spaces/{space_id}",
        summary="Delete a space",
        tag="admin",
        auth="admin",
        answers=deleted({}, SPACE_KEYS),
        errors=("invalid_field", *ADMIN),
        params=(SPACE_ID, DRY_RUN),
        description="The space and everything of it; its credentials stop working and its live"
        " streams end at once. A deletion cut short is finished by the same request.",
    ),
    Operation(
        id="erase",
        route="POST /admin/spaces/{space_id}/erase",
        summary="Erase one person's data",
        tag="admin",
        auth="admin",
        answers=deleted({"person": _PERSON}, ERASURE_KEYS),
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=_ERASE_BODY,
        description="Everything the space holds about a uid or a Telegram user id: clicks,"
        " events, binds, postback log rows and deliveries.",
    ),
)
