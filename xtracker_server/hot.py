"""The ASGI front of the server: the hottest endpoints skip Starlette's middleware and router.

``POST /events`` (what every bot calls) and ``GET|HEAD /r/<slug>`` (every ad click) are served
by their usual Starlette handlers, called directly: a request to them does not walk the router's
list of routes nor pass through the two exception middlewares, which together cost about as
much CPU as the whole handler of a redirect (bench/ingest.py, bench/clicks.py). Errors get the
same answers as everywhere else (``errors.EXCEPTION_HANDLERS``). Every other request, other
methods on these paths included, goes to the Starlette application unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from xtracker_server.errors import EXCEPTION_HANDLERS

Handler = Callable[[Request], Awaitable[Response]]


class HotPaths:
    def __init__(
        self,
        app: Starlette,
        *,
        exact: Mapping[tuple[str, str], Handler],
        prefixed: Mapping[tuple[str, str], tuple[str, Handler]],
    ) -> None:
        """``exact``: (method, path) -> handler. ``prefixed``: (method, "/r/") -> (the name of
        the one path parameter that follows the prefix, handler)."""
        self.app = app
        self._exact = exact
        self._prefixed = prefixed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self._handler(scope)
            if handler is not None:
                scope["app"] = self.app  # what request.app is, as under Starlette
                request = Request(scope, receive)
                try:
                    response = await handler(request)
                except Exception as exc:
                    response = await _error_response(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _handler(self, scope: Scope) -> Handler | None:
        method, path = scope["method"], scope["path"]
        handler = self._exact.get((method, path))
        if handler is not None:
            return handler
        cut = path.find("/", 1) + 1
        if cut:
            found = self._prefixed.get((method, path[:cut]))
            rest = path[cut:]
            # The same match as Starlette's "{name}": one non-empty segment.
            if found is not None and rest and "/" not in rest:
                scope["path_params"] = {found[0]: rest}
                return found[1]
        return None


async def _error_response(request: Request, exc: Exception) -> Response:
    for kind in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(kind)
        if handler is not None:
            return await handler(request, exc)
    raise exc  # not an Exception subclass we answer: let the server handle it
