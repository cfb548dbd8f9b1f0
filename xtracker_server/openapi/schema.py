"""JSON Schema building blocks: the small pieces every area's schemas are written with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "BOOL",
    "COUNT",
    "INT",
    "MS",
    "STR",
    "TRUE",
    "Schema",
    "answer",
    "array",
    "closed",
    "enum",
    "nullable",
    "ref",
]

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
MS: Schema = {"type": "integer", "description": "milliseconds since the Unix epoch (UTC)"}
TRUE: Schema = {"const": True}
COUNT: Schema = {"type": "integer", "minimum": 0}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def enum(values: tuple[str, ...] | list[str]) -> Schema:
    return {"type": "string", "enum": list(values)}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def closed(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    """A JSON object with exactly these properties: an answer that gains a field the document
    does not know fails the conformance test, so the document cannot fall behind."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def answer(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    """A successful JSON answer: ``"ok": true`` and these fields."""
    return closed({"ok": TRUE, **required}, optional)
