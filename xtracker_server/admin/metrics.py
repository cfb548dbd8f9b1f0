"""``GET /metrics``: the server's Prometheus metrics (xtracker_server/metrics.py), for the
operator: the admin token, or ``XTRACKER_METRICS_TOKEN`` (docs/operations.md#metrics)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xtracker_server.state import app_state


async def metrics(request: Request) -> Response:
    state = app_state(request)
    await state.auth.metrics_reader(request)
    readings = await state.metrics.read_database(state.store)
    body, content_type = state.metrics.exposition(readings, request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


routes = [Route("/metrics", metrics, methods=["GET"])]
