"""The admin API's spaces and their credentials (bearer secret, ingest tokens, token binds)
and currencies."""

from __future__ import annotations

from xtracker_server.openapi.errors import ADMIN, CREDENTIAL, JSON_BODY
from xtracker_server.openapi.operation import Operation, Param, json_answer
from xtracker_server.openapi.schema import (
    BOOL,
    COUNT,
    INT,
    MS,
    STR,
    Schema,
    answer,
    array,
    closed,
    nullable,
    ref,
)
from xtracker_server.openapi.shared import SPACE_ID

__all__ = ["OPERATIONS"]

_SPACE = closed({"id": INT, "name": STR, "created_ms": MS})
_SUB_ID_NAME: Schema = {
    "type": "string",
    "pattern": "^[A-Za-z][A-Za-z0-9_-]{0,31}$",
    "description": "a query parameter, not fbclid nor a campaign or utm field",
}
_SUB_IDS = answer({"space_id": INT, "params": array(_SUB_ID_NAME)})
_TOKEN_BINDS = answer({"space_id": INT, "token_binds": BOOL})
_BEARER_REVOKED = answer({"space_id": INT, "kind": {"const": "bearer"}, "revoked": COUNT})
_INGEST_REVOKED = answer(
    {"space_id": INT, "kind": {"const": "ingest"}, "name": STR, "revoked": COUNT}
)
_INGEST_TOKEN = closed(
    {
        "name": STR,
        "hint": {"type": "string", "description": "the prefix and last four characters"},
        "created_ms": MS,
        "expires_ms": {
            **nullable(MS),
            "description": "null: the token's current secret; else a rotated-out one's end",
        },
        "last_postback_ms": nullable(MS),
    }
)
_CURRENCY_CODE: Schema = {
    "type": "string",
    "pattern": "^[A-Za-z0-9]{3,10}$",
    "description": "3 to 10 ASCII letters or digits; upper-cased",
}
_CURRENCIES = answer(
    {
        "space_id": INT,
        "allowed": {**array(STR), "description": "the space's own codes, sorted"},
        "crypto": {**array(STR), "description": "the crypto tickers every space accepts"},
    }
)
_TOKEN = Param("name", STR, "the ingest token's name", required=True, where="path")

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        id="list_spaces",
        route="GET /admin/spaces",
        summary="List spaces",
        tag="admin",
        auth="admin",
        answers={200: json_answer("Every space.", answer({"spaces": array(_SPACE)}))},
        errors=CREDENTIAL,
    ),
    Operation(
        id="create_space",
        route="POST /admin/spaces",
        summary="Create a space",
        tag="admin",
        auth="admin",
        answers={
            201: json_answer(
                "The space and its credentials, shown only here.",
                answer({"id": INT, "name": STR, "bearer": STR, "ingest_token": STR}),
            )
        },
        errors=(*JSON_BODY, *CREDENTIAL),
        body=ref("SpaceCreate"),
    ),
    Operation(
        id="rotate_key",
        route="POST /admin/spaces/{space_id}/rotate",
        summary="Rotate a credential",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "The new secret; the previous ones stay valid until previous_valid_until_ms.",
                {
                    "anyOf": [
                        answer({"space_id": INT, **secret, "previous_valid_until_ms": nullable(MS)})
                        for secret in ({"bearer": STR}, {"name": STR, "ingest_token": STR})
                    ]
                },
            )
        },
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=ref("Rotate"),
        body_required=False,
    ),
    Operation(
        id="revoke_key",
        route="POST /admin/spaces/{space_id}/revoke",
        summary="End rotated-out secrets now",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "How many secrets stopped working (0: none was left to end); the current one"
                " stays.",
                {"anyOf": [_BEARER_REVOKED, _INGEST_REVOKED]},
            )
        },
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=ref("Rotate"),
        body_required=False,
        description="After a leak: rotate, then revoke. The live streams the revoked secrets"
        " opened end too.",
    ),
    Operation(
        id="get_token_binds",
        route="GET /admin/spaces/{space_id}/token-binds",
        summary="Whether the space takes binds made with the ingest token",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The setting (on by default).", _TOKEN_BINDS)},
        errors=ADMIN,
        params=(SPACE_ID,),
    ),
    Operation(
        id="set_token_binds",
        route="PATCH /admin/spaces/{space_id}/token-binds",
        summary="Take binds made with the ingest token, or refuse them",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The setting now in effect.", _TOKEN_BINDS)},
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=ref("TokenBinds"),
        description="Off: GET /bind answers 403 token_binds_off; POST /bind is unaffected.",
    ),
    Operation(
        id="list_tokens",
        route="GET /admin/spaces/{space_id}/tokens",
        summary="List ingest tokens",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "The live ones, rotated-out secrets in their grace period too, by name; never"
                " the secrets.",
                answer({"tokens": array(_INGEST_TOKEN)}),
            )
        },
        errors=ADMIN,
        params=(SPACE_ID,),
    ),
    Operation(
        id="add_token",
        route="POST /admin/spaces/{space_id}/tokens",
        summary="Add a named ingest token",
        tag="admin",
        auth="admin",
        answers={
            201: json_answer(
                "The new token's secret, shown only here.",
                answer({"space_id": INT, "name": STR, "ingest_token": STR}),
            )
        },
        errors=(*JSON_BODY, "token_name_taken", *ADMIN),
        params=(SPACE_ID,),
        body=ref("TokenAdd"),
    ),
    Operation(
        id="revoke_token",
        route="DELETE /admin/spaces/{space_id}/tokens/{name}",
        summary="Revoke a named ingest token",
        tag="admin",
        auth="admin",
        answers={
            200: json_answer(
                "Every secret of the token stopped working (rotated-out ones too).",
                answer(
                    {
                        "space_id": INT,
                        "kind": {"const": "ingest"},
                        "name": STR,
                        "revoked": {"type": "integer", "minimum": 1},
                    }
                ),
            )
        },
        errors=ADMIN,
        params=(SPACE_ID, _TOKEN),
        description="404 when the space has no live ingest token of that name.",
    ),
    Operation(
        id="get_currencies",
        route="GET /admin/spaces/{space_id}/currencies",
        summary="The space's own currency codes",
        tag="admin",
        auth="admin",
        answers={200: json_answer("Besides ISO 4217 and the crypto tickers.", _CURRENCIES)},
        errors=ADMIN,
        params=(SPACE_ID,),
    ),
    Operation(
        id="put_currencies",
        route="PUT /admin/spaces/{space_id}/currencies",
        summary="Replace the space's own currency codes",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The list now in effect.", _CURRENCIES)},
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=closed(
            {
                "allowed": {
                    **array(_CURRENCY_CODE),
                    "description": "the whole list ([] empties it); at most 50 different codes",
                }
            }
        ),
    ),
    Operation(
        id="get_sub_ids",
        route="GET /admin/spaces/{space_id}/sub-ids",
        summary="The query parameters the space records as sub-ids",
        tag="admin",
        auth="admin",
        answers={200: json_answer("In the order declared.", _SUB_IDS)},
        errors=ADMIN,
        params=(SPACE_ID,),
    ),
    Operation(
        id="put_sub_ids",
        route="PUT /admin/spaces/{space_id}/sub-ids",
        summary="Replace the query parameters the space records as sub-ids",
        tag="admin",
        auth="admin",
        answers={200: json_answer("The list now in effect.", _SUB_IDS)},
        errors=(*JSON_BODY, *ADMIN),
        params=(SPACE_ID,),
        body=closed(
            {
                "params": {
                    **array(_SUB_ID_NAME),
                    "description": "the whole list ([] empties it); at most 20 names, each once",
                }
            }
        ),
        description="Clicks made from then on record these parameters' values.",
    ),
)
