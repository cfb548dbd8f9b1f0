"""The admin API's links (docs/links.md). Their schemas, from ``LinkSpec``, are in ``models``."""

from __future__ import annotations

from xtracker_server.domain.deletion import LINK_KEYS
from xtracker_server.openapi.errors import ADMIN, JSON_BODY
from xtracker_server.openapi.operation import Operation, json_answer
from xtracker_server.openapi.schema import STR, answer, array, ref
from xtracker_server.openapi.shared import DRY_RUN, SLUG, SPACE_ID, deleted

__all__ = ["OPERATIONS"]

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="list_links",
        route="GET /admin/spaces/{space_id}/links",
        summary="List links",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "The space's links, oldest first.", answer({"links": array(ref("Link"))})
            )
        },
        errors=ADMIN,
        params=(SPACE_ID,),
    ),
    Operation(
        id="create_link",
        route="POST /admin/spaces/{space_id}/links",
        summary="Create a link",
        tag="admin",
        auth="admin",
        answers={
            201: json_answer(
                "The link's slug, kind and URLs.",
                answer({"slug": STR, "kind": STR, "landing_url": STR, "redirect_url": STR}),
            )
        },
        errors=(*JSON_BODY, "slug_taken", *ADMIN),
        params=(SPACE_ID,),
        body=ref("LinkCreate"),
    ),
    Operation(
        id="update_link",
        route="PATCH /admin/spaces/{space_id}/links/{slug}",
        summary="Change a link",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The whole link.", answer({"link": ref("Link")}))},
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID, SLUG),
        body=ref("LinkChange"),
    ),
    Operation(
        id="delete_link",
        route="DELETE /admin/spaces/{space_id}/links/{slug}",
        summary="Delete a link",
        tag="admin",
        auth="admin",
        answers=deleted({"link": STR}, LINK_KEYS),
        errors=("invalid_field", *ADMIN),
        params=(SPACE_ID, SLUG, DRY_RUN),
        description="Its landing and redirect answer 404 at once; its clicks and their events"
        " stay and count under no link. 404: no such link in this space.",
    ),
)
