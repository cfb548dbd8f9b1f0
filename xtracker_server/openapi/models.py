"""Request bodies, from the models the server validates with: the wire models of
``xtracker_wire``, ``LinkSpec``, ``DestinationInput`` ..., with the limits their validators enforce
in code added where JSON Schema can say them; and the link's shapes derived from ``LinkSpec``."""

from __future__ import annotations

import copy

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from xtracker_server.admin.routes import Rotate, SpaceCreate, TokenBinds
from xtracker_server.admin.tokens import TokenAdd
from xtracker_server.domain.destination_input import DestinationInput
from xtracker_server.domain.link_input import LinkSpec
from xtracker_server.openapi.schema import INT, MS, STR, Schema, closed
from xtracker_wire import (
    MAX_EID_LEN,
    MAX_TG_ID,
    MAX_UID_LEN,
    MIN_OCCURRED_AT_MS,
    BindIn,
    ClickIn,
    EventIn,
)

__all__ = ["link_schemas", "model_schemas"]

#: An ingest token's name (``domain.credentials.check_token_name``).
_TOKEN_NAME: Schema = {
    "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
    "description": "an ingest token's name: 1 to 40 letters, digits, '.', '_' or '-', starting"
    " with a letter or digit; lower-cased",
}

_MODELS: tuple[type[BaseModel], ...] = (
    EventIn,
    BindIn,
    ClickIn,
    SpaceCreate,
    Rotate,
    TokenBinds,
    TokenAdd,
    LinkSpec,
    DestinationInput,
)


def model_schemas() -> dict[str, Schema]:
    """The pydantic models' JSON schemas (their ``$defs`` included), named after the model,
    with the limits their validators enforce in code added where JSON Schema can say them."""
    _, top = models_json_schema(
        [(m, "validation") for m in _MODELS], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Schema] = top["$defs"]
    props = schemas["EventIn"]["properties"]
    props["uid"]["anyOf"][0]["maxLength"] = MAX_UID_LEN
    props["eid"]["anyOf"][0]["maxLength"] = MAX_EID_LEN
    props["tg_id"]["anyOf"][0].update(minimum=1, maximum=MAX_TG_ID - 1)
    props["occurred_at_ms"]["anyOf"][0]["minimum"] = MIN_OCCURRED_AT_MS
    props["value"]["description"] = 'an amount, exact: a decimal string ("25.00") or a number'
    props["currency"]["description"] = "the currency code; default USD"
    bind = schemas["BindIn"]["properties"]
    bind["uid"].update(minLength=1, maxLength=MAX_UID_LEN)
    bind["tg_id"].update(minimum=1, maximum=MAX_TG_ID - 1)
    schemas["Rotate"]["properties"]["name"]["anyOf"][0].update(_TOKEN_NAME)
    schemas["TokenAdd"]["properties"]["name"].update(_TOKEN_NAME)
    return schemas


def link_schemas(spec: Schema) -> dict[str, Schema]:
    """``LinkCreate``, ``LinkChange`` and ``Link``, from ``LinkSpec``'s schema ``spec``."""
    return {"LinkCreate": _link_create(spec), "LinkChange": _link_change(spec), "Link": _link(spec)}


def _link_create(spec: Schema) -> Schema:
    """``LinkSpec`` and the slug, which is not part of a link's definition."""
    body = copy.deepcopy(spec)
    slug = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z0-9-]+$"}
    body["properties"] = {"slug": slug, **body["properties"]}
    body["required"] = ["slug", *body["required"]]
    body["title"] = "LinkCreate"
    return body


def _link_change(spec: Schema) -> Schema:
    """Any fields of ``LinkSpec``; the link is validated again as a whole."""
    body = copy.deepcopy(spec)
    body.pop("required", None)
    body["title"] = "LinkChange"
    return body


def _link(spec: Schema) -> Schema:
    """A link as the admin API shows it: every field of its definition, and more."""
    props = {name: _without_default(p) for name, p in spec["properties"].items()}
    return closed(
        {
            "slug": STR,
            "space_id": INT,
            **props,
            "landing_url": STR,
            "redirect_url": STR,
            "created_ms": MS,
            "updated_ms": MS,
        }
    )


def _without_default(schema: Schema) -> Schema:
    return {k: v for k, v in schema.items() if k not in ("default", "title")}
