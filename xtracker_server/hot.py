"""The ASGI front of the server: the hottest endpoints skip Starlette's middleware and router.

``POST /events`` and ``POST /events/batch`` (what every bot calls) and ``GET|HEAD /r/<slug>``
(every ad click) are served by their usual Starlette handlers, called directly: a request to
them does not walk the router's list of routes nor pass through the two exception
middlewares, which together cost about as much CPU as the whole handler of a redirect
(bench/ingest.py, bench/clicks.py). Errors get the same answers as everywhere else
(``errors.EXCEPTION_HANDLERS``). Every other request, other methods on these paths included,
goes to the Starlette application unchanged.

What the hot paths skip is named in one place, ``REPLICATED_LAYERS``: the layers Starlette puts
around the router of our app, each replaced here on the hot paths (both answer errors with
``EXCEPTION_HANDLERS``, as ``_error_response`` does). Anything else around the router (a
middleware given to the app or added with ``add_middleware``, another exception handler, debug
mode, a layer a new Starlette release adds) would silently not run on the hot paths, so it is
refused: ``HotPaths`` will not be built over such an app, and the app's lifespan
(``check_layers``, called when the server starts) fails the start. To add a middleware, make
it run here too and add it to ``REPLICATED_LAYERS``.

Because the hot paths skip any middleware, this front is also where every request is counted
for ``/metrics`` (by method, route template and status): those it serves itself, and those of
the application, counted when their response starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from xtracker_server.errors import EXCEPTION_HANDLERS
from xtracker_server.metrics import UNMATCHED, Metrics

Handler = Callable[[Request], Awaitable[Response]]

#: The layers around the app's router, outermost first, that the hot paths replace: Starlette's
#: catch-all (answers Exception with ``errors.on_unexpected``) and its exception middleware
#: (answers the other ``EXCEPTION_HANDLERS``). ``_error_response`` does what both do.
REPLICATED_LAYERS: tuple[type, ...] = (ServerErrorMiddleware, ExceptionMiddleware)


def check_layers(app: Starlette) -> None:
    """Refuse an app whose hot paths would skip something: a layer around its router other
    than ``REPLICATED_LAYERS``, exception handlers other than ``EXCEPTION_HANDLERS``, or debug
    mode (its error pages are not replicated here)."""
    layers: list[type] = []
    node: object = app.middleware_stack or app.build_middleware_stack()
    while node is not app.router and len(layers) <= len(REPLICATED_LAYERS):
        layers.append(type(node))
        node = getattr(node, "app", None)
    problems = []
    if tuple(layers) != REPLICATED_LAYERS or node is not app.router:
        names = ", ".join(layer.__name__ for layer in layers)
        problems.append(f"the layers around the router are {names} (and maybe more)")
    if app.exception_handlers != EXCEPTION_HANDLERS:
        problems.append("its exception handlers are not errors.EXCEPTION_HANDLERS")
    if app.debug:
        problems.append("it is in debug mode")
    if problems:
        raise RuntimeError(
            f"{'; '.join(problems)}: POST /events(/batch), /r/ and /l/ skip Starlette's middleware"
            f" (xtracker_server/hot.py), which replaces only"
            f" {', '.join(layer.__name__ for layer in REPLICATED_LAYERS)}. Make what you add"
            " run in HotPaths too and list it in hot.REPLICATED_LAYERS."
        )


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
        check_layers(app)
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
