"""The landing pages and redirects of links: public, no credential (docs/links.md)."""

from __future__ import annotations

from xtracker_server.openapi.errors import RETRY_AFTER
from xtracker_server.openapi.operation import Answer, Operation
from xtracker_server.openapi.schema import STR, ref
from xtracker_server.openapi.shared import SLUG

__all__ = ["OPERATIONS"]

_NO_LINK = Answer(
    "No such link or a disabled one (an HTML page), or a path that is not a slug (the error"
    " shape).",
    {"text/html": STR, "application/json": ref("Error")},
)
_LANDING_DOWN = Answer(
    "The link cannot be looked up: storage fails and this server has not seen the link since"
    " it started (an HTML page). A link it knows is still served, its click kept until storage"
    " takes it.",
    {"text/html": STR},
    RETRY_AFTER,
)
#: What a landing or a redirect answers besides its page: no such link, or no storage to find it.
_UNSERVED = {404: _NO_LINK, 503: _LANDING_DOWN}
_LOCATION = {"Location": {"required": True, "schema": STR}}
_LANDING = (
    "Records a click and mints its uid (a HEAD request or a crawler records none). No"
    " credential: the slug finds the link. See docs/links.md."
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="get_landing",
        route="GET /l/{slug}",
        summary="A link's landing page",
        tag="landing",
        auth="none",
        answers={200: Answer("The page.", {"text/html": STR}), **_UNSERVED},
        params=(SLUG,),
        description=_LANDING,
    ),
    Operation(
        id="head_landing",
        route="HEAD /l/{slug}",
        summary="A link's landing page, without a click",
        tag="landing",
        auth="none",
        answers={200: Answer("The page's headers."), **_UNSERVED},
        params=(SLUG,),
    ),
    Operation(
        id="get_redirect",
        route="GET /r/{slug}",
        summary="A link's instant redirect",
        tag="landing",
        auth="none",
        answers={302: Answer("To where the link leads.", headers=_LOCATION), **_UNSERVED},
        params=(SLUG,),
        description=_LANDING,
    ),
    Operation(
        id="head_redirect",
        route="HEAD /r/{slug}",
        summary="A link's redirect, without a click",
        tag="landing",
        auth="none",
        answers={302: Answer("To the link's landing page.", headers=_LOCATION), **_UNSERVED},
        params=(SLUG,),
    ),
)
