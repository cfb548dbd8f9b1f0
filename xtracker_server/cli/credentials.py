"""``xtracker key …``, ``xtracker token …`` and ``xtracker admin …``: a space's bearer secret and
ingest tokens, and the operator's admin token. Secrets are printed once, stored only hashed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from xtracker_server.cli._common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    SpaceOption,
    group,
    out,
    print_json,
    run,
)

if TYPE_CHECKING:
    from xtracker_server.domain.credentials import CredentialKind

key_app = group()  # its help: COMMANDS in cli/__init__.py
token_app = group()  # its help: COMMANDS in cli/__init__.py
admin_app = group()  # its help: COMMANDS in cli/__init__.py

IngestOption = Annotated[
    bool, typer.Option("--ingest", help="An ingest token instead of the bearer.")
]
TokenNameOption = Annotated[
    str | None,
    typer.Option("--name", help="With --ingest: the ingest token's name (default: default)."),
]
#: The option of the credentials services' field.
NAME = {"name": "--name"}


def _kind(ingest: bool) -> CredentialKind:
    """The credential that ``--ingest`` chooses (``--name`` then names the ingest token)."""
    from xtracker_server.domain.credentials import CredentialKind

    return CredentialKind.INGEST if ingest else CredentialKind.BEARER


@key_app.command("rotate")
def key_rotate(
    space: SpaceOption,
    ingest: IngestOption = False,
    name: TokenNameOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Issue a new bearer secret (or ingest token); the old one keeps working for 24 hours
    (end it at once with `xtracker key revoke`)."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.credentials import rotate
    from xtracker_server.views import rotation_json

    kind = _kind(ingest)
    rotation = run(db, lambda ctx: rotate(OPERATOR, ctx, space, kind, name), flags=NAME)
    data = rotation_json(rotation)
    if json_:
        print_json(data)
        return
    what = kind.value if rotation.name is None else f"ingest token {rotation.name!r}"
    out.print(f"New {what} for space {space} (shown once):", markup=False, highlight=False)
    out.print(rotation.secret, markup=False, highlight=False)
    if rotation.previous_valid_until_ms:
        until = time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(rotation.previous_valid_until_ms / 1000)
        )
        out.print(f"The previous one stays valid until {until}.")


@key_app.command("revoke")
def key_revoke(
    space: SpaceOption,
    ingest: IngestOption = False,
    name: TokenNameOption = None,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """End now the previous bearer secret (or ingest token) that a rotation left valid for 24
    hours, after a leak. The current one keeps working; a running server refuses the old one
    within seconds."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.credentials import revoke_previous
    from xtracker_server.views import revocation_json

    kind = _kind(ingest)
    revocation = run(db, lambda ctx: revoke_previous(OPERATOR, ctx, space, kind, name), flags=NAME)
    if json_:
        print_json(revocation_json(revocation))
        return
    what = kind.value if revocation.name is None else f"ingest token {revocation.name!r}"
    if revocation.revoked:
        message = (
            f"Ended {revocation.revoked} previous {what} secret(s) of space {space}; the"
            " current one keeps working."
        )
    else:
        message = (
            f"No previous {what} secret of space {space} was still valid: nothing to end"
            " (rotate first: `xtracker key rotate`)."
        )
    out.print(message, markup=False, highlight=False, soft_wrap=True)


@token_app.command("add")
def token_add(
    space: SpaceOption,
    name: Annotated[str, typer.Option("--name", help="The partner network, e.g. adcombo.")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Add an ingest token for one partner network; prints it once. The postback log names
    the token each postback used."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.credentials import add_ingest_token
    from xtracker_server.views import new_token_json

    token = run(db, lambda ctx: add_ingest_token(OPERATOR, ctx, space, name), flags=NAME)
    name = token.name
    if json_:
        print_json(new_token_json(token))
        return
    out.print(f"Ingest token {name!r} of space {space} (shown once; stored only as a hash):",
              markup=False, highlight=False, soft_wrap=True)  # fmt: skip
    out.print(token.secret, markup=False, highlight=False)


@token_app.command("list")
def token_list(
    space: SpaceOption,
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """The space's live ingest tokens: names and hints, never the secrets."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.credentials import list_ingest_tokens
    from xtracker_server.views import ingest_token_json

    found = run(db, lambda ctx: list_ingest_tokens(OPERATOR, ctx, space))
    if json_:
        print_json([ingest_token_json(t) for t in found])
        return

    def when(ms: int | None, none: str) -> str:
        return none if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))

    from rich.table import Table

    table = Table("name", "hint", "created (UTC)", "valid until", "last postback")
    for t in found:
        table.add_row(t.name, t.hint, when(t.created_ms, ""), when(t.expires_ms, "until revoked"),
                      when(t.last_postback_ms, "never"))  # fmt: skip
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    space: SpaceOption,
    name: Annotated[str, typer.Option("--name", help="The token's name.")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """End an ingest token now (also its rotated-out secrets): postbacks that use it get 401.
    The space's other tokens keep working."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.credentials import revoke_ingest_token
    from xtracker_server.views import revocation_json

    revocation = run(db, lambda ctx: revoke_ingest_token(OPERATOR, ctx, space, name))
    name = name.strip().lower()
    if json_:
        print_json(revocation_json(revocation))
        return
    out.print(f"Ingest token {name!r} of space {space} revoked; a running server refuses it"
              " within seconds.", markup=False, highlight=False, soft_wrap=True)  # fmt: skip


@admin_app.command("reset-token")
def admin_reset_token(db: DbOption = DEFAULT_DB, json_: JsonOption = False) -> None:
    """Replace the stored admin token (the old one stops working within seconds)."""
    from xtracker_server.services import OPERATOR
    from xtracker_server.services.credentials import reset_admin_token

    token = run(db, lambda ctx: reset_admin_token(OPERATOR, ctx))
    if json_:
        print_json({"admin_token": token})
    else:
        out.print("New admin token (shown once):")
        out.print(token, markup=False, highlight=False)
