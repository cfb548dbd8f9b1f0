"""``POST /clicks`` (bearer, JSON): a click that did not come through our landing page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_server.clock import now_ms
from xtracker_server.domain.clicks import click_draft
from xtracker_server.errors import field_error
from xtracker_server.ingress._http import read_json_object, validate
from xtracker_server.state import app_state
from xtracker_wire import ClickIn


async def post_clicks(request: Request) -> JSONResponse:
    state = app_state(request)
    space_id = await state.auth.bearer_space(request)
    req = validate(ClickIn, await read_json_object(request))
    link_id = None
    if req.link_slug is not None:
        link = await state.store.link_by_slug(space_id, req.link_slug)
        if link is None or not link.enabled:
            why = "no such link in this space" if link is None else "the link is disabled"
            raise field_error("link_slug", why)
        link_id = link.id
    draft = click_draft(
        space_id=space_id,
        source="api",
        now_ms=now_ms(),
        raw_query=req.raw_query,
        link_id=link_id,
        fbclid=req.fbclid,
        campaign_name=req.campaign_name,
    )
    uid = await state.store.record_click(draft)
    return JSONResponse({"ok": True, "uid": uid})
