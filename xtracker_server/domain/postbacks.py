"""Reading a partner network's postback: status aliases, parameter aliases, token masking.

Networks call ``/e`` with their own words. A space maps them onto the wire fields:

- **status aliases** turn a network's status (``ftd``, ``lead``, ``sale``) into a canonical
  event, into ``deposit.reversed`` (``rejected``, ``chargeback``: the deposit named by the
  postback's eid is taken back), or into ``ignore`` (``withdrawal``, ``commission``): answered
  200, logged, not counted;
- **parameter aliases** accept a network's parameter name (``click_id``, ``sumdep``, ``tid``)
  for one of ours (``uid``, ``value``, ``eid``). Our own name always wins; two aliases of one
  field that disagree are refused, never guessed.

    >>> a = effective_aliases([])
    >>> read_postback({"click_id": "abc", "status": "FTD", "sumdep": "25.00"}, a).data
    {'event': 'deposit', 'uid': 'abc', 'value': '25.00'}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from xtracker_server.domain.credentials import mask
from xtracker_server.domain.macros import UnfilledMacroError, first_unfilled_macro
from xtracker_server.exceptions import XTrackerServerError
from xtracker_wire import EVENT_NAMES, REVERSAL, CanonicalEvent, check_plain_text

#: What a status alias may map to besides a canonical event: answered, logged, not counted.
IGNORE = "ignore"

#: The fields of ``/e`` (``t`` is ``occurred_at_ms``), in the order they are read.
FIELDS: tuple[str, ...] = ("event", "uid", "value", "currency", "eid", "t", "tg_id", "test")

DEFAULT_STATUS_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        # registration
        "reg": "registration",
        "lead": "registration",  # Keitaro
        "signup": "registration",
        # deposit: first and repeat deposits are both deposits; the eid tells them apart
        "ftd": "deposit",
        "dep": "deposit",
        "sale": "deposit",  # Keitaro
        "redeposit": "deposit",
        "rebill": "deposit",  # Keitaro: a recurring payment
        # subscribed
        "sub": "subscribed",
        "join": "subscribed",
        # statuses that are not a funnel step: acknowledged so the network stops re-firing
        "conf": IGNORE,  # Pocket Option, Quotex: e-mail confirmed
        "withdrawal": IGNORE,
        "commission": IGNORE,
        # a deposit taken back: the postback's eid names the deposit (docs/postbacks.md)
        "rejected": REVERSAL,  # Keitaro, Binom: a conversion the network rejected
        "chargeback": REVERSAL,
        "reversed": REVERSAL,
        "refund": REVERSAL,
        "ping": IGNORE,
        "test": IGNORE,
    }
)

DEFAULT_PARAM_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        # the click id we put on the offer link
        "click_id": "uid",  # Pocket Option's macro name
        "clickid": "uid",  # RedTrack and many others
        "subid": "uid",  # Keitaro
        "sub_id": "uid",
        "sub1": "uid",  # 1win
        "cid": "uid",  # Quotex's template, Voluum
        # the amount
        "sumdep": "value",  # Pocket Option, Quotex
        "payout": "value",  # Keitaro, Binom, Voluum
        "amount": "value",
        "sum": "value",  # RedTrack
        # the transaction id: the dedup discriminator
        "tid": "eid",  # Keitaro
        "txid": "eid",  # Voluum
        "trade_id": "eid",
        "transaction_id": "eid",
        # the status
        "status": "event",  # Quotex, Keitaro
        "goal": "event",
        "cnv_status": "event",  # Binom
    }
)

_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}")
_PARAM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-\[\]]{0,63}")


@dataclass(frozen=True)
class Aliases:
    """A space's effective aliases: the defaults with its own changes applied."""

    statuses: Mapping[str, str]  # lower-case status -> canonical event or IGNORE
    params: Mapping[str, str]  # lower-case parameter name -> field
    origins: Mapping[tuple[str, str], str] = field(default_factory=dict)  # -> default/custom

    def accepted_statuses(self) -> str:
        counted = sorted(k for k, v in self.statuses.items() if v != IGNORE)
        ignored = sorted(k for k, v in self.statuses.items() if v == IGNORE)
        text = ", ".join(EVENT_NAMES)
        if counted:
            text += f"; aliases: {', '.join(counted)}"
        if ignored:
            text += f"; ignored: {', '.join(ignored)}"
        return text


@dataclass(frozen=True)
class AliasRow:
    """One change a space made: ``target`` None removes a default alias."""

    kind: str  # "status" or "param"
    alias: str
    target: str | None


def effective_aliases(rows: Iterable[AliasRow]) -> Aliases:
    statuses = dict(DEFAULT_STATUS_ALIASES)
    params = dict(DEFAULT_PARAM_ALIASES)
    origins = {("status", k): "default" for k in statuses}
    origins.update({("param", k): "default" for k in params})
    for row in rows:
        table = statuses if row.kind == "status" else params
        if row.target is None:
            table.pop(row.alias, None)
            origins[(row.kind, row.alias)] = "removed"
        else:
            table[row.alias] = row.target
            origins[(row.kind, row.alias)] = "custom"
    return Aliases(statuses=statuses, params=params, origins=origins)


def check_status_alias(alias: str, target: str) -> tuple[str, str]:
    """A status alias to store, normalised; ``ValueError`` says what is wrong."""
    name = check_status_name(alias)
    target = target.strip().lower()
    if target not in (*EVENT_NAMES, IGNORE):
        raise ValueError(f"maps to one of {', '.join(EVENT_NAMES)} or {IGNORE}, not {target!r}")
    return name, target


def check_status_name(alias: str) -> str:
    name = alias.strip().lower()
    if not _ALIAS.fullmatch(name):
        raise ValueError(
            f"{alias!r} is not a status name: 1 to 64 letters, digits, '_', '.', ':' or '-'"
        )
    if name in EVENT_NAMES or name == IGNORE:
        raise ValueError(f"{name!r} is a canonical name: it always means itself")
    return name


def check_param_alias(name: str, target: str) -> tuple[str, str]:
    """A parameter alias to store, normalised; ``ValueError`` says what is wrong."""
    param = check_param_name(name)
    target = target.strip().lower()
    if target not in FIELDS:
        raise ValueError(f"stands for one of {', '.join(FIELDS)}, not {target!r}")
    return param, target


def check_param_name(name: str) -> str:
    param = name.strip().lower()
    if not _PARAM.fullmatch(param):
        raise ValueError(f"{name!r} is not a parameter name: 1 to 64 letters, digits, '_.-[]'")
    if param in FIELDS or param in ("token", "occurred_at_ms"):
        raise ValueError(f"{param!r} is one of our own parameter names; it always means itself")
    return param


class PostbackProblem(XTrackerServerError, ValueError):
    """A postback that cannot be read: answered 422 on ``field``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class PostbackRead:
    """What a postback says, in wire terms. ``data`` is ready for ``EventIn`` (``t`` is already
    ``occurred_at_ms``); ``renames`` gives the name the sender used for each field, for errors."""

    data: dict[str, object]
    status: str | None  # the status as the network sent it, before aliases
    ignored: bool
    renames: dict[str, str]


def read_postback(params: Mapping[str, object], aliases: Aliases) -> PostbackRead:
    """Map a postback's parameters onto the event fields. Unknown parameters are ignored:
    networks append their own. Raises ``PostbackProblem`` for an unknown status or for
    aliases that disagree, and ``UnfilledMacroError`` for a field of a counted event that
    holds an unfilled macro (an ignored status is not counted: its fields are not checked)."""
    data: dict[str, object] = {}
    names: dict[str, str] = {}
    for name in FIELDS:
        if _present(params.get(name)):
            data[name], names[name] = params[name], name
    by_alias: dict[str, list[tuple[str, object]]] = {}
    for name, raw in params.items():
        target = aliases.params.get(name.lower())
        if target is not None and target not in data and _present(raw):
            by_alias.setdefault(target, []).append((name, raw))
    for target, found in by_alias.items():
        values = {_text(raw) for _, raw in found}
        if len(values) > 1:
            listed = ", ".join(f"{n}={_text(v)[:40]!r}" for n, v in found)
            raise PostbackProblem(
                target,
                f"ambiguous: {listed} disagree; send {target}= itself, or remove the alias that"
                " is not yours (xtracker postback param unset)",
            )
        data[target], names[target] = found[0][1], found[0][0]

    _refuse_macros(data, ("event",), names)
    status: str | None = None
    raw_event = data.get("event")
    if isinstance(raw_event, str):
        status = raw_event.strip()
        try:
            check_plain_text(status)
        except ValueError as exc:
            raise PostbackProblem(names["event"], str(exc)) from None
        key = status.lower()
        mapped = key if key in EVENT_NAMES else aliases.statuses.get(key)
        if mapped is None:
            raise PostbackProblem(
                names["event"],
                f"unknown status {status[:40]!r}: use one of {aliases.accepted_statuses()}"
                " (add one with xtracker postback alias set)",
            )
        if mapped == IGNORE:
            return PostbackRead(data=data, status=status, ignored=True, renames=names)
        data["event"] = mapped
        # Single-URL networks fill the amount macro on every status (0 on a registration).
        if (
            mapped != CanonicalEvent.DEPOSIT.value
            and "value" in data
            and (names["value"] != "value" or _is_zero(data["value"]))
        ):
            del data["value"]
    _refuse_macros(data, FIELDS, names)
    if "t" in data:
        data["occurred_at_ms"] = data.pop("t")
        names["occurred_at_ms"] = names.pop("t")
    renames = {k: v for k, v in names.items() if k != v}
    return PostbackRead(data=data, status=status, ignored=False, renames=renames)


def _refuse_macros(
    data: Mapping[str, object], fields: tuple[str, ...], names: Mapping[str, str]
) -> None:
    found = first_unfilled_macro(data, fields, names)
    if found is not None:
        raise UnfilledMacroError(found)


def _present(raw: object) -> bool:
    if raw is None:
        return False
    return not (isinstance(raw, str) and not raw.strip())


def _text(raw: object) -> str:
    return raw.strip() if isinstance(raw, str) else str(raw)


def _is_zero(raw: object) -> bool:
    try:
        return Decimal(_text(raw)) == 0
    except (InvalidOperation, ValueError):
        return False


_TOKEN_PARAM = re.compile(r"((?:^|[?&;])token=)([^&?#;\s]*)", re.IGNORECASE)
_TOKEN_JSON = re.compile(r'("token"\s*:\s*")((?:[^"\\]|\\.)*)(")')


def mask_token(text: str, token: str | None) -> str:
    """``text`` (a query string or a body) with every token value masked as ``xt_it_…abcd``:
    the token that authenticated the request wherever it appears, and any ``token=`` value."""
    if token:
        text = text.replace(token, mask(token))
    text = _TOKEN_PARAM.sub(lambda m: m[1] + _masked(m[2]), text)
    return _TOKEN_JSON.sub(lambda m: m[1] + _masked(m[2]) + m[3], text)


def _masked(value: str) -> str:
    return value if "…" in value or not value else mask(value)


def clip(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters (marked with …); None stays None."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
