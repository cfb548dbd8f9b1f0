"""The ASGI front: which requests it serves itself, and that its errors are the usual ones."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from xtracker_server.errors import EXCEPTION_HANDLERS, ApiError
from xtracker_server.hot import HotPaths


async def fast(request: Request) -> Response:
    if request.query_params.get("fail") == "api":
        raise ApiError(422, "invalid_field", "x: bad", field="x")
    if request.query_params.get("fail") == "bug":
        raise RuntimeError("boom")
    seen = {"by": "hot", "params": dict(request.path_params), "app": request.app is starlette}
    return JSONResponse(seen)


async def slow(request: Request) -> Response:
    return PlainTextResponse(f"router:{request.url.path}")


starlette = Starlette(
    routes=[
        Route("/events", slow, methods=["POST", "GET"]),
        Route("/r/{slug}", slow, methods=["GET"]),
        Route("/r/{slug}/more", slow, methods=["GET"]),
    ],
    exception_handlers=EXCEPTION_HANDLERS,
)
front = HotPaths(
    starlette, exact={("POST", "/events"): fast}, prefixed={("GET", "/r/"): ("slug", fast)}
)


def call(method: str, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=front)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path)

    return asyncio.run(go())


def test_hot_paths_are_served_by_their_handler() -> None:
    assert call("POST", "/events").json() == {"by": "hot", "params": {}, "app": True}
    assert call("GET", "/r/abc").json() == {"by": "hot", "params": {"slug": "abc"}, "app": True}


def test_everything_else_goes_to_the_router() -> None:
    assert call("GET", "/events").text == "router:/events"  # another method on a hot path
    assert call("GET", "/r/abc/more").text == "router:/r/abc/more"  # not one segment
    assert call("GET", "/r/").status_code == 404  # an empty slug is no match
    assert call("GET", "/nowhere").json()["error"] == "not_found"


def test_errors_get_the_usual_answers() -> None:
    api = call("POST", "/events?fail=api")
    assert api.status_code == 422
    assert api.json() == {"ok": False, "error": "invalid_field", "detail": "x: bad", "field": "x"}
    bug = call("POST", "/events?fail=bug")
    assert bug.status_code == 500
    assert bug.json()["error"] == "internal"
