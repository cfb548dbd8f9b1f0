"""Reading requests: bounded bodies, strict JSON, tolerant query strings."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from xtracker_server.config import MAX_BODY_BYTES
from xtracker_server.domain.macros import first_unfilled_macro
from xtracker_server.domain.query import parse_query, whole_number
from xtracker_server.errors import ApiError, field_error, invalid, unfilled_macro_error

M = TypeVar("M", bound=BaseModel)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the body is over {limit // 1024} KiB")


_TOO_LARGE = _too_large(MAX_BODY_BYTES)


async def read_body(request: Request, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (declared or streamed)."""
    too_large = _TOO_LARGE if limit == MAX_BODY_BYTES else _too_large(limit)
    declared = request.headers.get("content-length")
    if declared is not None:
        size = whole_number(declared)
        if size is None:
            if declared.isascii() and declared.isdigit():
                raise too_large  # more than 18 digits
            raise ApiError(400, "malformed", "Content-Length is not a number")
        if size > limit:
            raise too_large
        return await request.body()  # the server holds the client to its declared length
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object. Numbers with a fraction become ``Decimal``, so an amount sent
    as a JSON number (``25.10``) is kept exactly. With ``empty_ok``, no body means ``{}``.

    The body must be I-JSON (RFC 7493): a name given twice, or a lone surrogate (``"\\ud800"``,
    which no database or UTF-8 encoder takes), is refused with 400 naming the field. A number
    no field can hold (over 40 characters, or an exponent beyond ±40, such as ``1e1000000``) is
    refused with 422 naming the field, before anything converts it."""
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


#: The longest JSON number literal, and the largest exponent (of its first digit, either way),
#: any field can use: no field holds more than 19 digits (a 64-bit integer) or 8 decimals.
MAX_NUMBER_CHARS = 40
MAX_NUMBER_EXPONENT = 40


class _OutOfRange:
    """A JSON number no field can hold, kept as text; ``_object`` refuses it with its key."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _json_int(text: str) -> int | _OutOfRange:
    return int(text) if len(text) <= MAX_NUMBER_CHARS else _OutOfRange(text)


def _json_decimal(text: str) -> Decimal | _OutOfRange:
    if len(text) > MAX_NUMBER_CHARS:
        return _OutOfRange(text)
    try:
        value = Decimal(text)
    except InvalidOperation:  # an exponent beyond even Decimal's range
        return _OutOfRange(text)
    return value if abs(value.adjusted()) <= MAX_NUMBER_EXPONENT else _OutOfRange(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if a name repeats, a name or a string holds a lone surrogate, or
    a number is out of range (see ``read_json_object``)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        _refuse_repeated(pairs)
    for key, value in pairs:
        if not key.isascii() and _has_surrogate(key):
            raise ApiError(400, "malformed", f"{_shown(key)}: {_SURROGATE}", field=_shown(key))
        _check_value(key, value)
    return data


def _refuse_repeated(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            name = _shown(key)
            raise ApiError(
                400, "malformed", f"{name} is given twice: send each field once", field=name
            )
        seen.add(key)


def _check_value(key: str, value: Any) -> None:
    if isinstance(value, str):
        if not value.isascii() and _has_surrogate(value):
            raise ApiError(400, "malformed", f"{key}: {_SURROGATE}", field=key)
    elif isinstance(value, _OutOfRange):
        shown = value.text if len(value.text) <= 24 else value.text[:20] + "…"
        raise field_error(
            key,
            f"the number {shown} is out of range (no field takes over {MAX_NUMBER_CHARS}"
            f" characters or an exponent beyond ±{MAX_NUMBER_EXPONENT})",
        )
    elif isinstance(value, list):
        for item in value:
            _check_value(key, item)


_SURROGATE = "holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"


def _has_surrogate(text: str) -> bool:
    return _SURROGATES.search(text) is not None


_SURROGATES = re.compile("[\ud800-\udfff]")


def _shown(text: str) -> str:
    """``text`` safe to put in an answer (a lone surrogate is shown as its escape)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# Built once: json.loads() with options builds a new decoder on every call.
_DECODER = json.JSONDecoder(
    parse_float=_json_decimal,
    parse_int=_json_int,
    parse_constant=_no_constant,
    object_pairs_hook=_object,
)


class Refused:
    """An object of a batch body that ``read_json_object`` would refuse, with its error: in
    a batch, one bad event is refused alone (``parse_batch_object``)."""

    __slots__ = ("error",)

    def __init__(self, error: ApiError) -> None:
        self.error = error


def _object_or_refused(pairs: list[tuple[str, Any]]) -> dict[str, Any] | Refused:
    try:
        return _object(pairs)
    except ApiError as exc:
        return Refused(exc)


_BATCH_DECODER = json.JSONDecoder(
    parse_float=_json_decimal,
    parse_int=_json_int,
    parse_constant=_no_constant,
    object_pairs_hook=_object_or_refused,
)


def parse_batch_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object read as ``parse_json_object`` reads one, except that an
    object inside it that breaks its rules (a name given twice, a lone surrogate, a number out
    of range) becomes a ``Refused`` holding the error, rather than refusing the whole body."""
    if not body.strip():
        raise ApiError(400, "malformed", "the body is empty: send a JSON object")
    try:
        data = _BATCH_DECODER.decode(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "malformed", "the body is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed", f"the body is not valid JSON: {exc}") from None
    if isinstance(data, Refused):
        raise data.error
    if not isinstance(data, dict):
        raise ApiError(400, "malformed", "the body must be a JSON object")
    return data


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
