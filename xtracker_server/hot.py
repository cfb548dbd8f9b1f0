"""The ASGI front of the server: the hottest endpoints skip Starlette's middleware and router.

``POST /events`` (what every bot calls) and ``GET|HEAD /r/<slug>`` (every ad click) are served
by their usual Starlette handlers, called directly: a request to them does not walk the router's
list of routes nor pass through the two exception middlewares, which together cost about as
much CPU as the whole handler of a redirect (bench/ingest.py, bench/clicks.py). Errors get the
same answers as everywhere else (``errors.EXCEPTION_HANDLERS``). Every other request, other
methods on these paths included, goes to the Starlette application unchanged.

Because the hot paths skip any middleware, this front is also where every request is counted
for ``/metrics`` (by method, route template and status): those it serves itself, and those of
the application, counted when their response starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from xtracker_server.errors import EXCEPTION_HANDLERS
from xtracker_server.metrics import UNMATCHED, Metrics

Handler = Callable[[Request], Awaitable[Response]]


class HotPaths:
    def __init__(
        self,
        app: Starlette,
        *,
        exact: Mapping[tuple[str, str], Handler],
        prefixed: Mapping[tuple[str, str], tuple[str, Handler]],
        metrics: Metrics | None = None,
    ) -> None:
        """``exact``: (method, path) -> handler. ``prefixed``: (method, "/r/") -> (the name of
        the one path parameter that follows the prefix, handler). ``metrics``: where requests
        are counted (None: not counted)."""
        self.app = app
        # Each with its route template (what requests are counted by): "/r/{slug}".
        self._exact = {key: (handler, key[1]) for key, handler in exact.items()}
        self._prefixed = {
            key: (name, handler, f"{key[1]}{{{name}}}") for key, (name, handler) in prefixed.items()
        }
        self._metrics = metrics
        self._templates = route_templates(app.routes) if metrics is not None else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = self._handler(scope)
            if found is not None:
                handler, route = found
                scope["app"] = self.app  # what request.app is, as under Starlette
                request = Request(scope, receive)
                try:
                    response = await handler(request)
                except Exception as exc:
                    response = await _error_response(request, exc)
                if self._metrics is not None:
                    self._metrics.request(scope["method"], route, response.status_code)
                await response(scope, receive, send)
                return
            if self._metrics is not None:
                send = self._counting(scope, send, self._metrics)
        await self.app(scope, receive, send)

    def _handler(self, scope: Scope) -> tuple[Handler, str] | None:
        method, path = scope["method"], scope["path"]
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact
        cut = path.find("/", 1) + 1
        if cut:
            found = self._prefixed.get((method, path[:cut]))
            rest = path[cut:]
            # The same match as Starlette's "{name}": one non-empty segment.
            if found is not None and rest and "/" not in rest:
                name, handler, route = found
                scope["path_params"] = {name: rest}
                return handler, route
        return None

    def _counting(self, scope: Scope, send: Send, metrics: Metrics) -> Send:
        """``send``, counting the response when it starts: by the template of the route that
        Starlette's router matched (it names the route's endpoint in the scope)."""
        templates = self._templates

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = templates.get(scope.get("endpoint"), UNMATCHED)
                metrics.request(scope["method"], route, message["status"])
            await send(message)

        return counted


def route_templates(routes: Iterable[BaseRoute]) -> dict[object, str]:
    """Each route's endpoint -> its path template. An endpoint serves one template only, or
    its requests could not be told apart: that is refused here, when the app is built."""
    templates: dict[object, str] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        known = templates.setdefault(route.endpoint, route.path)
        if known != route.path:
            raise ValueError(
                f"{route.endpoint!r} serves both {known} and {route.path}: give each its own"
                " endpoint, so that /metrics can count them apart"
            )
    return templates


async def _error_response(request: Request, exc: Exception) -> Response:
    for kind in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(kind)
        if handler is not None:
            return await handler(request, exc)
    raise exc  # not an Exception subclass we answer: let the server handle it
