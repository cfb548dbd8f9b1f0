"""The machine-readable contract: an OpenAPI 3.1 document of every endpoint, served at
``GET /openapi.json`` (no credential).

Each API area has its module, whose ``OPERATIONS`` holds one ``Operation`` per route and method
with the schemas of its answers: ``ingress`` (events, postbacks, binds, clicks), ``meta``
(health, metrics, this document), ``landing``, ``spaces`` (and their credentials and
currencies), ``links``, ``deletion`` (a space, a person), ``destinations`` (and the outbox),
``postbacks`` and ``reports`` (and the live stream). Documenting a new endpoint is one entry
there; a new area is a module listed in ``builder.OPERATIONS``, whose order is the document's.

The pieces they are written with: ``schema`` (JSON Schema building blocks), ``errors`` (every
error code and the shared error responses), ``operation`` (``Operation``, ``Param``,
``Answer``, the credentials), ``shared`` (parameters and answers of several areas) and
``models`` (request bodies, from the pydantic models the server validates with: the wire models
of ``xtracker_wire``, ``LinkSpec``, ``DestinationInput`` ...). Answers are described next to the
handlers' shapes in ``views.py`` and ``services/reports.py``. ``builder`` puts it all together
and serves it. Two tests keep the document true (tests/e2e/test_openapi.py): every route of the
app must be in it, and real answers of a running server, successes and errors, must match its
schemas.
"""

from xtracker_server.openapi.builder import OPERATIONS, document, openapi_json, routes
from xtracker_server.openapi.operation import Answer, Operation, Param

__all__ = ["OPERATIONS", "Answer", "Operation", "Param", "document", "openapi_json", "routes"]
