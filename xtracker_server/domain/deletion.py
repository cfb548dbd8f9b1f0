"""Deleting and erasing, the pure part: who a person is, which postback log rows name them,
and the counts a deletion or an erasure says before it is done and answers after.

What each deletion takes with it (docs/operations.md#deleting-and-erasing):

- a space: everything of it (clicks, events, binds, postback log rows, deliveries and their
  attempts, credentials, links, destinations, postback aliases); the space's id is never
  given to another space;
- a link: only the link (its landing and redirect answer 404). Its clicks and their events
  stay, and count in the space's reports as "no link" from then on;
- a destination: the destination and every delivery to it (pending ones are dropped, never
  sent) with their attempts;
- an erasure (a person, by uid or Telegram user id): their clicks, events, binds, postback
  log rows and the deliveries of their events. By ``tg_id`` it takes every uid bound to that
  user, the events sent with that ``tg_id``, and the log rows that name any of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from xtracker_wire import MAX_UID_LEN
from xtracker_wire import check_tg_id as wire_tg_id

#: The counts, in the order they are shown. A deletion answers the keys of its kind.
COUNT_LABELS: dict[str, str] = {
    "credentials": "credentials",
    "links": "links",
    "destinations": "destinations",
    "postback_aliases": "postback aliases",
    "unrecorded_clicks": "counts of visits not recorded as clicks (per link and hour)",
    "clicks": "clicks",
    "clicks_unlinked": "clicks that stay, without their link",
    "events": "events",
    "events_unlinked": "events that stay, counted under no link",
    "binds": "binds",
    "postback_log": "postback log rows",
    "deliveries_pending": "deliveries not sent yet (dropped)",
    "deliveries_sent": "deliveries sent",
    "deliveries_failed": "deliveries failed",
    "delivery_attempts": "delivery attempts",
    "costs": "ad costs (per day and campaign, ad set, ad or link)",
    "exchange_rates": "exchange rates",
}

SPACE_KEYS = ("credentials", "links", "destinations", "postback_aliases", "unrecorded_clicks",
              "clicks", "events",
              "binds", "postback_log", "deliveries_pending", "deliveries_sent",
              "deliveries_failed", "delivery_attempts", "costs", "exchange_rates")  # fmt: skip
LINK_KEYS = ("links", "clicks_unlinked", "events_unlinked", "unrecorded_clicks")
DESTINATION_KEYS = ("destinations", "deliveries_pending", "deliveries_sent", "deliveries_failed",
                    "delivery_attempts")  # fmt: skip
ERASURE_KEYS = ("clicks", "events", "binds", "postback_log", "deliveries_pending",
                "deliveries_sent", "deliveries_failed", "delivery_attempts")  # fmt: skip

#: A delivery's status -> the count it falls under.
DELIVERY_COUNT = {
    "pending": "deliveries_pending",
    "retrying": "deliveries_pending",
    "sent": "deliveries_sent",
    "failed_permanently": "deliveries_failed",
}


def counts(keys: Iterable[str], *found: Mapping[str, int]) -> dict[str, int]:
    """``keys`` (every one, zeros included), each the sum of its values in ``found``."""
    return {k: sum(f.get(k, 0) for f in found) for k in keys}


def delivery_counts(statuses: Iterable[str]) -> dict[str, int]:
    """The deliveries of ``statuses`` (one per delivery), under their count keys."""
    out: dict[str, int] = {}
    for status in statuses:
        key = DELIVERY_COUNT[status]
        out[key] = out.get(key, 0) + 1
    return out


@dataclass(frozen=True)
class Person:
    """Whom an erasure is about: a click uid, or a Telegram user (and every uid bound to them)."""

    uid: str | None = None
    tg_id: int | None = None

    def __post_init__(self) -> None:
        if (self.uid is None) == (self.tg_id is None):
            raise ValueError("an erasure names a uid or a tg_id, not both nor neither")

    def __str__(self) -> str:
        return f"uid {self.uid}" if self.uid is not None else f"tg_id {self.tg_id}"


def check_uid(raw: object) -> str:
    """A uid to erase: as ``POST /events`` takes them (1 to 128 characters, trimmed)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be a uid (a non-empty string)")
    uid = raw.strip()
    if len(uid) > MAX_UID_LEN or re.search(r"[\x00-\x1f\x7f]", uid):
        raise ValueError(f"must be a uid (at most {MAX_UID_LEN} characters, no control characters)")
    return uid


def check_tg_id(raw: object) -> int:
    """A Telegram user id to erase, as ``POST /events`` takes them (a positive integer, or a
    string of one)."""
    return wire_tg_id(raw)


def log_needles(uids: Iterable[str], tg_id: int | None) -> list[str]:
    """Texts whose presence in a postback log row's query or body makes it worth a closer look
    (``log_row_names``): each uid as sent and URL-encoded, and the Telegram user id."""
    needles = {text for uid in uids for text in (uid, quote(uid, safe=""))}
    if tg_id is not None:
        needles.add(str(tg_id))
    return sorted(needles)


def log_row_names(
    row_uid: str | None, query: str, body: str | None, uids: Iterable[str], tg_id: int | None
) -> bool:
    """Whether a postback log row is about the person: its uid is one of theirs, or a value of
    its query or body (a parameter, a JSON field) is one of their uids or their Telegram user
    id. Whole values only: a short uid chosen by a bot must not take every row containing it."""
    wanted = set(uids)
    if row_uid is not None and row_uid in wanted:
        return True
    if tg_id is not None:
        wanted.add(str(tg_id))
    return not wanted.isdisjoint(_values(query) | _values(body or ""))


def _values(text: str) -> set[str]:
    """The values a query string or a body (JSON or a form) carries. A log keeps the first
    2,048 characters, so a cut JSON body is read for its quoted strings and numbers."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return set(_leaves(json.loads(stripped)))
        except ValueError:
            return set(_JSON_STRING.findall(stripped)) | set(_JSON_NUMBER.findall(stripped))
    return {value.strip() for _, value in parse_qsl(stripped, keep_blank_values=True)}


def _leaves(data: object) -> Iterator[str]:
    if isinstance(data, dict):
        for value in data.values():
            yield from _leaves(value)
    elif isinstance(data, list):
        for value in data:
            yield from _leaves(value)
    elif data is not None and not isinstance(data, bool):
        yield str(data).strip()


_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_JSON_NUMBER = re.compile(r"(?<![\w.])([0-9]+)(?![\w.])")
