"""Binds: whose word ties a Telegram user to a click, and which bind stands.

Two credentials can bind. The bot binds with its bearer secret (``POST /bind``) when it sees
``/start fb_<uid>``: it has seen the user arrive through that click. The ingest token
(``GET /bind``) sits in partner URLs, in cabinets we do not control: whoever holds it could mint
a uid on a link of their own and bind it to someone else's ``tg_id``, taking that user's later
``tg_id``-only events. So (docs/api.md#who-may-replace-whom):

- a token bind never replaces a bind: a user who has one keeps it, the token bind is ignored;
- a bearer bind replaces a token bind, of the same user or of the same uid, and takes over what
  that token bind attributed;
- between bearer binds the rules stay: the first bind of a uid stays (409 for another user), and
  a user's latest bind wins for their ``tg_id``-only events (last click);
- a space may refuse token binds altogether.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class BindKind(str, Enum):
    """The credential a bind was made with."""

    BEARER = "bearer"  # POST /bind: the bot
    TOKEN = "token"  # GET /bind: whoever holds the ingest token


class BindAction(str, Enum):
    BIND = "bound"  # a new binding: the user's bind from now on
    UNCHANGED = "unchanged"  # this exact pair was already bound
    IGNORE = "ignored"  # a token bind of a user who is already bound: nothing is stored
    CONFLICT = "conflict"  # the uid belongs to another user (409), the first bind stays
    REFUSE = "refused"  # a token bind in a space that takes none (403)


@dataclass(frozen=True)
class BindPlan:
    action: BindAction
    #: BIND: the uid's token bind to another user gives way, and lets go of that user's events.
    take_uid: bool = False
    #: BIND: the user's token bind gives way; the events it attributed move to this uid.
    replace_user_bind: bool = False
    #: UNCHANGED: the bot confirms a pair a token bound; it is a bearer bind from now on.
    confirm: bool = False


def outranks(new: BindKind, old: BindKind) -> bool:
    """Whether a bind of kind ``new`` replaces one of kind ``old`` where both cannot stand:
    only the bot's bearer bind replaces, and only a token bind."""
    return new is BindKind.BEARER and old is BindKind.TOKEN


def plan_bind(
    new: BindKind,
    *,
    token_binds: bool,
    pair: BindKind | None,
    uid_holder: BindKind | None,
    user_bind: BindKind | None,
) -> BindPlan:
    """What a bind of ``uid`` to ``tg_id`` does, given what is bound now in its space.

    ``token_binds``: the space takes token binds. ``pair``: the kind of the bind of this very uid
    to this user, if any. ``uid_holder``: the kind of the bind of this uid to another user, if
    any. ``user_bind``: the kind of the user's binds of other uids, if any (a user has either one
    token bind or bearer binds only: this rule never lets the two stand together).
    """
    if new is BindKind.TOKEN and not token_binds:
        return BindPlan(BindAction.REFUSE)
    if pair is not None:
        return BindPlan(BindAction.UNCHANGED, confirm=outranks(new, pair))
    if uid_holder is not None and not outranks(new, uid_holder):
        return BindPlan(BindAction.CONFLICT)
    if user_bind is not None and new is BindKind.TOKEN:
        return BindPlan(BindAction.IGNORE)
    return BindPlan(
        BindAction.BIND,
        take_uid=uid_holder is not None,
        replace_user_bind=user_bind is not None and outranks(new, user_bind),
    )
