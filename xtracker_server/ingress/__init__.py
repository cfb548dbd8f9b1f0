"""The ingress API (docs/api.md): what bots and partner networks call."""

from starlette.routing import Route

from xtracker_server.ingress.batch import post_events_batch
from xtracker_server.ingress.bind import get_bind, post_bind
from xtracker_server.ingress.clicks import post_clicks
from xtracker_server.ingress.events import post_events
from xtracker_server.ingress.health import healthz, livez
from xtracker_server.ingress.postbacks import get_e, post_e

routes = [
    Route("/events", post_events, methods=["POST"]),
    Route("/events/batch", post_events_batch, methods=["POST"]),
    Route("/e", get_e, methods=["GET"]),
    Route("/e", post_e, methods=["POST"]),
    Route("/bind", post_bind, methods=["POST"]),
    Route("/bind", get_bind, methods=["GET"]),
    Route("/clicks", post_clicks, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/livez", livez, methods=["GET"]),
]
