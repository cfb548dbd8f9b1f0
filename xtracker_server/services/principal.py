"""Who calls a service: the principal, and what it may do (``authorize``).

Every service takes the acting principal first and asks ``authorize`` before it reads or
changes anything, so the admin API, the CLI and any later front end enforce the same rules.
A front end only says *who* is calling (it authenticates: the admin API checks the admin token
or a space's bearer secret; the command line works on the database file, as the operator).

- ``Operator``: the server's operator (the admin token, or the ``xtracker`` command on the
  file). May do everything.
- ``SpaceCredential``: a space's own credential. Its bearer secret may read that space's
  reports and live stream, nothing else and no other space's.

A dashboard user is the next principal: a type of its own here (its user and role) and its
rows in ``authorize``; the services and their callers stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from xtracker_server.domain.credentials import CredentialKind
from xtracker_server.services.errors import Forbidden

__all__ = ["OPERATOR", "Action", "Operator", "Principal", "SpaceCredential", "authorize"]


@dataclass(frozen=True, slots=True)
class Operator:
    """The operator: the admin token, or the command line on the database file."""


#: The one operator.
OPERATOR = Operator()


@dataclass(frozen=True, slots=True)
class SpaceCredential:
    """A space's own credential, of ``kind`` (bearer or ingest token)."""

    space_id: int
    kind: CredentialKind


Principal = Operator | SpaceCredential


class Action(Enum):
    """What a service does, as far as authorization goes (the value says it in words)."""

    ADMINISTER = "administer the server (its spaces and the admin token)"
    MANAGE = "manage a space (its links, destinations, credentials and settings)"
    READ_REPORTS = "read a space's reports and live stream"


def authorize(who: Principal, action: Action, space_id: int | None = None) -> None:
    """Return if ``who`` may do ``action`` (on ``space_id``, for the space's actions); else
    raise Forbidden saying what it takes."""
    if isinstance(who, Operator):
        return
    if action is Action.READ_REPORTS and who.kind is CredentialKind.BEARER:
        if who.space_id == space_id:
            return
        raise Forbidden(
            f"this bearer secret is not space {space_id}'s: use that space's bearer secret or"
            " the admin token"
        )
    raise Forbidden(
        f"a space's {who.kind.value} credential may not {action.value}: that takes the admin token"
    )
