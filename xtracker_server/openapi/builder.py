"""The document: every area's operations put together as OpenAPI 3.1, and the route that
serves it."""

from __future__ import annotations

import functools
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xtracker_server.openapi import (
    costs,
    deletion,
    destinations,
    groups,
    ingress,
    landing,
    links,
    meta,
    postbacks,
    reports,
    spaces,
)
from xtracker_server.openapi.errors import (
    ERROR,
    ERROR_CODES,
    error_response,
    error_response_name,
    error_schema_name,
    errors_by_status,
)
from xtracker_server.openapi.models import link_schemas, model_schemas
from xtracker_server.openapi.operation import SECURITY, Operation, Param
from xtracker_server.openapi.schema import Schema
from xtracker_server.state import app_state
from xtracker_server.version import VERSION

__all__ = ["OPERATIONS", "document", "openapi_json", "routes"]

#: Every operation, in the order of the document's paths.
OPERATIONS: tuple[Operation, ...] = (
    *ingress.OPERATIONS,
    *meta.OPERATIONS,
    *landing.OPERATIONS,
    *spaces.OPERATIONS,
    *links.OPERATIONS,
    *deletion.OPERATIONS,
    *destinations.OPERATIONS,
    *postbacks.OPERATIONS,
    *reports.OPERATIONS,
    *groups.OPERATIONS,
    *costs.OPERATIONS,
)


def _parameter(p: Param) -> Schema:
    out: Schema = {"name": p.name, "in": p.where, "schema": p.schema}
    if p.required:
        out["required"] = True
    if p.description:
        out["description"] = p.description
    return out


def _responses(op: Operation) -> Schema:
    responses: Schema = {}
    for status, a in op.answers.items():
        response: Schema = {"description": a.description}
        if a.content:
            response["content"] = {m: {"schema": s} for m, s in a.content.items()}
        if a.headers:
            response["headers"] = dict(a.headers)
        responses[str(status)] = response
    for status, codes in errors_by_status(op.errors).items():
        responses[str(status)] = {"$ref": f"#/components/responses/{error_response_name(codes)}"}
    return responses


def _operation(op: Operation) -> Schema:
    out: Schema = {
        "operationId": op.id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": SECURITY[op.auth],
        "responses": _responses(op),
    }
    if op.description:
        out["description"] = op.description
    if op.params:
        out["parameters"] = [_parameter(p) for p in op.params]
    if op.body is not None:
        content = {op.body_media: {"schema": op.body}}
        if op.form:
            content["application/x-www-form-urlencoded"] = {"schema": op.body}
        out["requestBody"] = {"required": op.body_required, "content": content}
    return out


def _schemas() -> dict[str, Schema]:
    models = model_schemas()
    return {
        "Error": ERROR,
        **{error_schema_name(c): e.schema(c) for c, e in ERROR_CODES.items()},
        **models,
        **link_schemas(models["LinkSpec"]),
        "StreamEnd": reports.STREAM_END,
    }


def _error_responses() -> dict[str, Schema]:
    """One shared response per set of codes that an operation answers with one status."""
    sets = {codes for op in OPERATIONS for codes in errors_by_status(op.errors).values()}
    ordered = sorted(sets, key=lambda codes: (ERROR_CODES[codes[0]].status, codes))
    return {error_response_name(c): error_response(c) for c in ordered}


@functools.cache
def document(base_url: str) -> dict[str, Any]:
    """The OpenAPI document of a server whose public URL is ``base_url``."""
    paths: dict[str, dict[str, Schema]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "XTRACKER",
            "version": VERSION,
            "description": "Conversion tracking for Telegram funnels. Errors answer"
            ' `{"ok": false, "error": "<code>", "detail": "..."}`; the prose is docs/api.md.',
        },
        "servers": [{"url": base_url}],
        "tags": [{"name": t} for t in ("ingress", "landing", "admin", "reports", "meta")],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "spaceBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the space's bearer secret (xt_sk_…)",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the operator's admin token",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "XTRACKER_METRICS_TOKEN, for GET /metrics only",
                },
                "ingestToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "the space's ingest token (xt_it_…)",
                },
            },
            "schemas": _schemas(),
            "responses": _error_responses(),
        },
    }


async def openapi_json(request: Request) -> Response:
    body = json.dumps(document(app_state(request).settings.base_url), separators=(",", ":"))
    return Response(body, media_type="application/json")


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
