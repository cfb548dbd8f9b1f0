"""Deleting spaces, links and destinations, and erasing a person (admin token only):

- ``DELETE /admin/spaces/{space_id}``
- ``DELETE /admin/spaces/{space_id}/links/{slug}``
- ``DELETE /admin/spaces/{space_id}/destinations/{destination_id}``
- ``POST /admin/spaces/{space_id}/erase`` with ``{"uid": …}`` or ``{"tg_id": …}``

Each says what it takes with ``?dry_run=1`` (``"dry_run": true`` in the erasure's body), and
answers what it removed (docs/api.md#deleting-and-erasing). The work runs through the writer
in short batches (xtracker_server/deletion.py); a client that goes away does not stop it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from xtracker_server import deletion
from xtracker_server.admin._spaces import admin_space
from xtracker_server.clock import now_ms
from xtracker_server.domain.deletion import Person, check_tg_id, check_uid
from xtracker_server.domain.query import whole_number
from xtracker_server.errors import ApiError, field_error
from xtracker_server.ingress._http import read_json_object
from xtracker_server.state import app_state
from xtracker_server.store import deletion as store
from xtracker_server.views import deletion_json

T = TypeVar("T")
#: Deletions under way, so that a request that goes away leaves its task referenced.
_running: set[asyncio.Task[Any]] = set()


async def delete_space(request: Request) -> JSONResponse:
    """The space and everything of it. Its credentials stop working and its live streams end
    at once; a deletion cut short (a crash) is finished by the same request."""
    state = app_state(request)
    await state.auth.admin(request)
    space_id = _id(request, "space_id", "space")
    if _dry_run(request):
        found = await state.store.read(store.space_counts, space_id)
        return _answer(found, f"no space {space_id}", space_id=space_id, dry_run=True)
    marked = await state.store.write(store.mark_space, space_id, now_ms())
    if marked is None:
        raise ApiError(404, "not_found", f"no space {space_id}")
    state.auth.forget_space(space_id)
    for slug in marked.slugs:
        state.links.forget(slug)
    removed = await _finish(deletion.run(state.store, deletion.delete_space(marked)))
    return _answer(removed, "", space_id=space_id, dry_run=False)


async def delete_link(request: Request) -> JSONResponse:
    """The link: its landing and redirect answer 404 at once. Its clicks and their events stay
    and count under "no link" in the reports."""
    state, space_id = await admin_space(request)
    slug = request.path_params["slug"]
    missing = f"no link {slug!r} in space {space_id}"
    head = {"space_id": space_id, "link": slug}
    if _dry_run(request):
        found = await state.store.read(store.link_counts, space_id, slug)
        return _answer(found, missing, **head, dry_run=True)
    marked = await state.store.write(store.mark_link, space_id, slug, now_ms())
    if marked is None:
        raise ApiError(404, "not_found", missing)
    state.links.forget(slug)
    removed = await _finish(deletion.run(state.store, deletion.delete_link(space_id, marked)))
    return _answer(removed, missing, **head, dry_run=False)


async def delete_destination(request: Request) -> JSONResponse:
    """The destination and every delivery to it: those not sent yet are dropped."""
    state, space_id = await admin_space(request)
    destination_id = _id(request, "destination_id", "destination")
    missing = f"no destination {destination_id} in space {space_id}"
    head = {"space_id": space_id, "destination_id": destination_id}
    if _dry_run(request):
        found = await state.store.read(store.destination_counts, space_id, destination_id)
        return _answer(found, missing, **head, dry_run=True)
    marked = await state.store.write(store.mark_destination, space_id, destination_id, now_ms())
    if marked is None:
        raise ApiError(404, "not_found", missing)
    plan = deletion.delete_destination(space_id, marked)
    removed = await _finish(deletion.run(state.store, plan))
    return _answer(removed, missing, **head, dry_run=False)


async def erase(request: Request) -> JSONResponse:
    """Body ``{"uid": "…"}`` or ``{"tg_id": 123}``, and ``"dry_run": true`` to only count."""
    state, space_id = await admin_space(request)
    body = await read_json_object(request)
    person, dry_run = _erasure(body)
    missing = f"no space {space_id}"
    head: dict[str, Any] = {"space_id": space_id, "person": _person_json(person)}
    if dry_run:
        found = await state.store.read(store.erasure_counts, space_id, person)
        return _answer(found, missing, **head, dry_run=True)
    removed = await _finish(deletion.run(state.store, deletion.erase(space_id, person)))
    return _answer(removed, missing, **head, dry_run=False)


def _erasure(body: dict[str, Any]) -> tuple[Person, bool]:
    unknown = sorted(set(body) - {"uid", "tg_id", "dry_run"})
    if unknown:
        raise field_error(unknown[0], "is not a known field (uid, tg_id, dry_run)")
    if ("uid" in body) == ("tg_id" in body):
        raise field_error("uid", "give the uid or the tg_id to erase (one of them)")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise field_error("dry_run", "must be true or false")
    try:
        if "uid" in body:
            return Person(uid=check_uid(body["uid"])), dry_run
    except ValueError as exc:
        raise field_error("uid", str(exc)) from None
    try:
        return Person(tg_id=check_tg_id(body["tg_id"])), dry_run
    except ValueError as exc:
        raise field_error("tg_id", str(exc)) from None


def _person_json(person: Person) -> dict[str, Any]:
    return {"uid": person.uid} if person.uid is not None else {"tg_id": person.tg_id}


async def _finish(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end even if the client goes away (the request is then cancelled,
    not the deletion: it would be finished later anyway, but with its batches in the way)."""
    task = asyncio.get_running_loop().create_task(work)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return await asyncio.shield(task)


def _answer(
    found: dict[str, int] | None, missing: str, *, dry_run: bool, **head: Any
) -> JSONResponse:
    if found is None:
        raise ApiError(404, "not_found", missing)
    return JSONResponse({"ok": True, **deletion_json(head, found, dry_run)})


def _dry_run(request: Request) -> bool:
    raw = request.query_params.get("dry_run", "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise field_error("dry_run", "must be 1 (only count what would be removed) or 0")


def _id(request: Request, param: str, what: str) -> int:
    raw = request.path_params[param]
    found = whole_number(raw)  # not isdigit(): "²" and 2**70 are no ids either (they were 500s)
    if found is None:
        raise ApiError(404, "not_found", f"no {what} {raw[:40]}")
    return found


routes = [
    Route("/admin/spaces/{space_id}", delete_space, methods=["DELETE"]),
    Route("/admin/spaces/{space_id}/links/{slug}", delete_link, methods=["DELETE"]),
    Route("/admin/spaces/{space_id}/destinations/{destination_id}", delete_destination,
          methods=["DELETE"]),
    Route("/admin/spaces/{space_id}/erase", erase, methods=["POST"]),
]  # fmt: skip
