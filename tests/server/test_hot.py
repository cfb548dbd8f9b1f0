"""The ASGI front: which requests it serves itself, that its errors are the usual ones, and
that nothing added to the app later is silently skipped on the hot paths."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xtracker_server.app import create_app
from xtracker_server.config import Settings
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


# --- what the hot paths skip: refused, never silently ----------------------------------------


class Tagging:
    """A middleware that marks every answer: what a later change might add to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-tagged", b"1")]
            await send(message)

        await self.app(scope, receive, send=tagged)


def test_a_front_over_an_app_with_a_middleware_is_refused() -> None:
    tagged = Starlette(
        routes=list(starlette.routes),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(Tagging)],
    )
    with pytest.raises(RuntimeError, match=r"Tagging.*hot\.py.*REPLICATED_LAYERS"):
        HotPaths(tagged, exact={("POST", "/events"): fast}, prefixed={})


def test_a_front_over_an_app_with_other_exception_handlers_is_refused() -> None:
    other = Starlette(routes=list(starlette.routes), exception_handlers={})
    with pytest.raises(RuntimeError, match="EXCEPTION_HANDLERS"):
        HotPaths(other, exact={("POST", "/events"): fast}, prefixed={})


async def _start(app: ASGIApp) -> tuple[Message, BaseException | None]:
    """Run the app's lifespan as a server does: its answer to the startup, and what the
    lifespan raised (after a shutdown, if the startup succeeded)."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    answer = await asyncio.wait_for(outbox.get(), timeout=60)
    if answer["type"] == "lifespan.startup.complete":
        await inbox.put({"type": "lifespan.shutdown"})
    (raised,) = await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), timeout=60)
    return answer, raised


@pytest.mark.parametrize(
    "change",
    [
        lambda app: app.add_middleware(Tagging),
        lambda app: app.add_exception_handler(KeyError, EXCEPTION_HANDLERS[Exception]),
    ],
    ids=["middleware", "exception-handler"],
)
def test_what_is_added_after_create_app_fails_the_servers_start(
    tmp_path: Path, change: Callable[[Starlette], None]
) -> None:
    front = create_app(Settings(db=str(tmp_path / "x.db"), worker=False))
    change(front.app)
    answer, raised = asyncio.run(_start(front))
    assert answer["type"] == "lifespan.startup.failed"
    assert "REPLICATED_LAYERS" in answer["message"]
    assert isinstance(raised, RuntimeError)
    assert not (tmp_path / "x.db").exists()  # refused before the store was opened
