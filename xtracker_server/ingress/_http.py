"""Reading requests: bounded bodies, strict JSON, tolerant query strings."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_server.config import MAX_BODY_BYTES
from xtracker_server.domain.macros import first_unfilled_macro
from xtracker_server.domain.query import parse_query
from xtracker_server.errors import ApiError, invalid, unfilled_macro_error

M = TypeVar("M", bound=BaseModel)

_TOO_LARGE = ApiError(413, "too_large", f"the body is over {MAX_BODY_BYTES // 1024} KiB")


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes the limit (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "malformed", "Content-Length is not a number")
        if int(declared) > MAX_BODY_BYTES:
            raise _TOO_LARGE
        return await request.body()  # the server holds the client to its declared length
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TOO_LARGE
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object. Numbers with a fraction become ``Decimal``, so an amount sent
    as a JSON number (``25.10``) is kept exactly. With ``empty_ok``, no body means ``{}``."""
    body = await read_body(request)
    if empty_ok and not body.strip():
        return {}
    return parse_json_object(body)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object (see ``read_json_object``), or 400."""
    if not body.strip():
        raise ApiError(400, "malformed", "the body is empty: send a JSON object")
    try:
        data = _DECODER.decode(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "malformed", "the body is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed", "the body must be a JSON object")
    return data


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


# Built once: json.loads() with options builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JSON(JSONResponse):
    """Starlette's JSONResponse with a shared encoder (same bytes, less work per answer)."""

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content).encode("utf-8")


def query_params(request: Request) -> dict[str, str]:
    return parse_query(request.scope["query_string"].decode("latin-1"))


def refuse_unfilled_macros(data: dict[str, Any], model: type[BaseModel]) -> None:
    """400 if a field of ``model`` in ``data`` holds an unfilled macro (``domain/macros.py``).
    For the ingress models only: admin input (a destination's URL template) holds macros."""
    found = first_unfilled_macro(data, model.model_fields)
    if found is not None:
        raise unfilled_macro_error(found)


def validate(model: type[M], data: dict[str, Any], *, renames: dict[str, str] | None = None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, renames=renames) from None
