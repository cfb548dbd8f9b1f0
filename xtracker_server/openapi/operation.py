"""What one entry of the document says: an ``Operation`` (a route and method) with its
parameters and answers, and the credentials an operation may take (``SECURITY``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from xtracker_server.openapi.errors import ERROR_CODES
from xtracker_server.openapi.schema import Schema

__all__ = ["SECURITY", "Answer", "Operation", "Param", "json_answer"]


@dataclass(frozen=True)
class Param:
    name: str
    schema: Schema
    description: str = ""
    required: bool = False
    where: str = "query"


@dataclass(frozen=True)
class Answer:
    """An answer other than the error shape: its media types and their schemas."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    headers: Mapping[str, Schema] = field(default_factory=dict)


def json_answer(description: str, schema: Schema) -> Answer:
    return Answer(description, {"application/json": schema})


@dataclass(frozen=True)
class Operation:
    """One route and method. ``route``: "METHOD /path"; ``auth``: a key of ``SECURITY``;
    ``answers``: its answers other than errors; ``errors``: the codes of ``ERROR_CODES`` it may
    answer; ``body``: the schema of its request body (JSON, and a form where ``form``)."""

    id: str
    route: str
    summary: str
    tag: str
    auth: str
    answers: Mapping[int, Answer]
    errors: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    body: Schema | None = None
    body_required: bool = True
    form: bool = False
    description: str = ""
    #: The media type of the body (a CSV import sends ``text/csv``).
    body_media: str = "application/json"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.errors) - ERROR_CODES.keys())
        if unknown:
            raise ValueError(f"{self.id}: unknown error codes {unknown}; add them to ERROR_CODES")

    @property
    def method(self) -> str:
        return self.route.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.route.split(" ", 1)[1]


SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "none": [],
    "bearer": [{"spaceBearer": []}],
    "ingest": [{"ingestToken": []}],
    # POST /e: the token in the query, or the body field ``token`` (hence the empty option)
    "ingest_or_body": [{"ingestToken": []}, {}],
    "admin": [{"adminToken": []}],
    "report": [{"adminToken": []}, {"spaceBearer": []}],
    "metrics": [{"adminToken": []}, {"metricsToken": []}],
}
