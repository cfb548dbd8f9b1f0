"""Deleting spaces, links and destinations, and erasing a person (admin token only):

- ``DELETE /admin/spaces/{space_id}``
- ``DELETE /admin/spaces/{space_id}/links/{slug}``
- ``DELETE /admin/spaces/{space_id}/destinations/{destination_id}``
- ``POST /admin/spaces/{space_id}/erase`` with ``{"uid": …}`` or ``{"tg_id": …}``

Each says what it takes with ``?dry_run=1`` (``"dry_run": true`` in the erasure's body), and
answers what it removed (docs/api.md#deleting-and-erasing). The work is the service's
(xtracker_server/services/deletion.py): short batches through the writer, run to their end
even if the client goes away.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server.admin._services import operator, path_id
from xtracker_server.errors import field_error
from xtracker_server.ingress._http import read_json_object
from xtracker_server.services import OPERATOR, deletion
from xtracker_server.views import deletion_json


async def delete_space(request: Request) -> JSONResponse:
    """The space and everything of it. Its credentials stop working and its live streams end
    at once; a deletion cut short (a crash) is finished by the same request."""
    ctx = await operator(request)
    space_id = path_id(request)
    dry_run = _dry_run(request)
    removed = await deletion.delete_space(OPERATOR, ctx, space_id, dry_run=dry_run)
    return _answer({"space_id": space_id}, removed, dry_run)


async def delete_link(request: Request) -> JSONResponse:
    """The link: its landing and redirect answer 404 at once. Its clicks and their events stay
    and count under "no link" in the reports."""
    ctx = await operator(request)
    space_id, slug = path_id(request), request.path_params["slug"]
    dry_run = _dry_run(request)
    removed = await deletion.delete_link(OPERATOR, ctx, space_id, slug, dry_run=dry_run)
    return _answer({"space_id": space_id, "link": slug}, removed, dry_run)


async def delete_destination(request: Request) -> JSONResponse:
    """The destination and every delivery to it: those not sent yet are dropped."""
    ctx = await operator(request)
    space_id = path_id(request)
    destination_id = path_id(request, "destination_id", "destination")
    dry_run = _dry_run(request)
    removed = await deletion.delete_destination(
        OPERATOR, ctx, space_id, destination_id, dry_run=dry_run
    )
    return _answer({"space_id": space_id, "destination_id": destination_id}, removed, dry_run)


async def erase(request: Request) -> JSONResponse:
    """Body ``{"uid": "…"}`` or ``{"tg_id": 123}``, and ``"dry_run": true`` to only count."""
    ctx = await operator(request)
    space_id = path_id(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - {"uid", "tg_id", "dry_run"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (uid, tg_id, dry_run)")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise field_error("dry_run", "must be true or false")
    named: dict[str, object] = {key: body[key] for key in ("uid", "tg_id") if key in body}
    erased = await deletion.erase(OPERATOR, ctx, space_id, named, dry_run=dry_run)
    person = erased.person
    shown = {"uid": person.uid} if person.uid is not None else {"tg_id": person.tg_id}
    return _answer({"space_id": space_id, "person": shown}, erased.removed, dry_run)


def _answer(head: dict[str, Any], removed: dict[str, int], dry_run: bool) -> JSONResponse:
    return JSONResponse({"ok": True, **deletion_json(head, removed, dry_run)})


def _dry_run(request: Request) -> bool:
    raw = request.query_params.get("dry_run", "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise field_error("dry_run", "must be 1 (only count what would be removed) or 0")


routes = [
    Route("/admin/spaces/{space_id}", delete_space, methods=["DELETE"]),
    Route("/admin/spaces/{space_id}/links/{slug}", delete_link, methods=["DELETE"]),
    Route("/admin/spaces/{space_id}/destinations/{destination_id}", delete_destination,
          methods=["DELETE"]),
    Route("/admin/spaces/{space_id}/erase", erase, methods=["POST"]),
]  # fmt: skip
