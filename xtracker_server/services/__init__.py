"""The use cases, once, for every front end: the admin API (``admin/``), the ``xtracker``
command, and the dashboard to come. A front end parses its input, says who is calling (a
``Principal``), calls a service and renders the answer; it adds no rule of its own.

Every service is ``async def name(who, ctx, …)``: ``who`` is the acting principal, which the
service authorizes first (``principal.authorize``); ``ctx`` is its ``Context`` (the store, the
settings, who hears of changes: ``context.py``). A refusal is a ``ServiceError``
(``errors.py``) that each front end maps to its own answer: the admin API to its JSON error
and status (``xtracker_server.errors.api_error``), the command line to a message and an exit
code.

One module per area: ``spaces``, ``credentials`` (bearer secret, ingest tokens, admin token),
``currencies``, ``links``, ``destinations``, ``deliveries`` (the outbox), ``postbacks`` (log,
aliases, URLs), ``reports`` (and the live stream's start), ``deletion``, ``costs`` (ad costs,
exchange rates, cost and ROI), ``sub_ids`` (the query parameters a space records as sub-ids).
This package itself holds only what every caller names: the principals and the errors (cheap
to import).

    >>> ctx = Context(store, settings)
    >>> link = await links.create_link(OPERATOR, ctx, 1, "promo", {"kind": "bot",
    ...                                                          "target": "my_offer_bot"})
"""

from xtracker_server.services.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from xtracker_server.services.principal import (
    OPERATOR,
    Action,
    Operator,
    Principal,
    SpaceCredential,
    authorize,
)

__all__ = [
    "OPERATOR",
    "Action",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Operator",
    "Principal",
    "ServiceError",
    "SpaceCredential",
    "authorize",
]
