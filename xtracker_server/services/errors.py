"""What a service refuses, for every front end to render in its own words.

::

    ServiceError            code: the admin API's "error"; detail: what went wrong, in words
    ├── Forbidden           the principal may not do this (403 forbidden)
    ├── NotFound            no such space, link, destination or ingest token (404 not_found)
    ├── Invalid             an input breaks a rule; ``problems`` names each field (422)
    └── Conflict            the name or slug is taken (409 slug_taken, token_name_taken)

``detail`` says nothing of a front end. Where a front end has a next step to suggest (an
endpoint, a command), ``rule`` names the refusal and the front end adds its hint
(``errors.api_error`` for the admin API). ``NotFound`` and ``Conflict`` say what was missing
or taken (``what``) and where (``space_id``, ``key``), so a front end can say it its way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xtracker_server.exceptions import XTrackerServerError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import ValidationError

__all__ = [
    "NAME_NEEDS_INGEST",
    "NOT_AN_ALIAS",
    "NOT_A_LIVE_TOKEN",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "ServiceError",
    "problems_of",
]

#: ``rule`` of an Invalid ``name`` given for a credential that has none (the bearer secret).
NAME_NEEDS_INGEST = "name_needs_ingest"
#: ``rule`` of an Invalid alias removal: the space has no such alias (what the database says).
NOT_AN_ALIAS = "not_an_alias"
#: ``rule`` of an Invalid ``token`` given for postback URLs: not a live ingest token of the space.
NOT_A_LIVE_TOKEN = "not_a_live_token"


class ServiceError(XTrackerServerError):
    code = "error"

    def __init__(self, detail: str, *, rule: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.rule = rule


class Forbidden(ServiceError):
    code = "forbidden"


class NotFound(ServiceError):
    """``what``: space, link, destination or token; ``key``: the slug, id or name looked for
    (None for a space: ``space_id`` is it); ``space_id`` None: looked for on the whole server."""

    code = "not_found"

    def __init__(
        self,
        what: str,
        space_id: int | None,
        key: str | int | None = None,
        *,
        detail: str | None = None,
        rule: str | None = None,
    ) -> None:
        if detail is None:
            shown = f"{key!r}" if isinstance(key, str) else str(key)
            detail = (
                f"no space {space_id}" if key is None else f"no {what} {shown} in space {space_id}"
            )
        super().__init__(detail, rule=rule)
        self.what = what
        self.space_id = space_id
        self.key = key


class Invalid(ServiceError):
    """One or more fields break a rule: ``problems`` is ``(field, problem)`` in order, the
    first being ``field``. ``detail`` joins them: ``slug: must be …; kind: is required``."""

    code = "invalid_field"

    def __init__(
        self, field: str, problem: str, *more: tuple[str, str], rule: str | None = None
    ) -> None:
        self.problems: tuple[tuple[str, str], ...] = ((field, problem), *more)
        super().__init__("; ".join(f"{f}: {p}" for f, p in self.problems), rule=rule)

    @property
    def field(self) -> str:
        return self.problems[0][0]

    @classmethod
    def from_validation(
        cls, exc: ValidationError, *, renames: Mapping[str, str] | None = None
    ) -> Invalid:
        (field, problem), *more = problems_of(exc, renames=renames)
        return cls(field, problem, *more)


class Conflict(ServiceError):
    """``code``: slug_taken or token_name_taken; ``field``: the input that clashes, when the
    front end names it."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        space_id: int,
        key: str,
        field: str | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(detail, rule=rule)
        self.code = code
        self.space_id = space_id
        self.key = key
        self.field = field


def problems_of(
    exc: ValidationError, *, renames: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """``(field, problem)`` for each error pydantic found, in words a user reads: the field's
    dotted path (renamed by ``renames``), and the problem without pydantic's prefixes."""
    problems = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        field = (renames or {}).get(field, field)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "is not a known field"
        elif err["type"] == "missing":
            message = "is required"
        problems.append((field, message))
    return problems
