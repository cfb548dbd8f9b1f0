"""Grouped reports by scanning (issue 17 §1): ``group_counts`` answers any ``GroupQuery``
exactly from the clicks and the inbox themselves, without the rollup. It is the reference
answer (the pre-aggregated one must agree with it) and the path of every query the rollup does
not pre-aggregate. Read-only; scoped by space.

What is counted (domain/groups.py has the shapes, docs/reports.md#grouped-reports the words):

- a uid belongs to its click (one per uid and space); a group is the clicks whose dimensions
  have the group's values and pass the filters. Uids without a click are in no group;
- cohort mode: the group's clicks created in the window, and every event of their uids at any
  time; day/hour are the click's;
- activity mode: the group's clicks created in the window, and the events in the window of the
  uids whose click (at any time) is in the group; day/hour are the click's for clicks and the
  event's for events (so a uid may count in several days);
- a step's uids are distinct per group; a deposit is reversed when a ``deposit.reversed`` of
  its uid names its eid; a first deposit is the uid's first deposit ever (time, then inbox id);
- the time to convert of a step is the uid's first event of it (in cohort mode ever, in
  activity mode in the window) less its click's time, in a histogram over ``TTC_BOUNDS_S``
  (under 0, a click stored after the event: bin 0);
- a name beside a campaign, ad set or ad id is the latest name (by click time, then the
  larger name) among the group's clicks read (cohort: the window's; activity: those too and
  the clicks of the uids counted);
- test events never count. Amounts are summed as ``Decimal`` (exact).

Every ``GroupCounts`` has every canonical event in ``uids`` and ``ttc`` (zeros too); its money
dicts hold the currencies and days that have deposits.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, tzinfo
from decimal import Decimal, InvalidOperation

from xtracker_server.domain.filters import DIMENSIONS, SUB_ID_PREFIX
from xtracker_server.domain.groups import NAME_OF, TTC_BOUNDS_S, GroupCounts, GroupQuery
from xtracker_server.domain.reports import FunnelMode, zone
from xtracker_wire import CANONICAL_EVENTS, REVERSAL

__all__ = ["group_counts", "ttc_bin"]

_EVENTS_IN = "(" + ", ".join(f"'{e}'" for e in CANONICAL_EVENTS) + ")"
_BOUNDS_MS = tuple(b * 1000 for b in TTC_BOUNDS_S)
_BINS = len(TTC_BOUNDS_S) + 1

#: The click's columns a dimension reads (``link``: the slug of its link).
_COLUMN = {d: ("l.slug" if d == "link" else f"c.{c}") for d, c in DIMENSIONS.items()}
_COLUMN["referrer"] = "c.referrer_domain"
_DIMS = tuple(_COLUMN)
#: A click as every query here reads it: uid, time, each dimension, then its sub-ids.
_CLICK = f"c.uid, c.created_ms, {', '.join(_COLUMN[d] for d in _DIMS)}, c.sub_ids"
_CLICK_WIDTH = 2 + len(_DIMS) + 1
_LINKS = "LEFT JOIN links l ON l.id = c.link_id"

#: Of an inbox row ``i``: reversed (a deposit named by a reversal of its uid).
_REVERSED = (
    f"(i.event = 'deposit' AND i.eid IS NOT NULL AND EXISTS (SELECT 1 FROM inbox r"
    f" INDEXED BY inbox_space_uid"
    f" WHERE r.space_id = i.space_id AND r.uid = i.uid AND r.event = '{REVERSAL}'"
    f" AND r.eid = i.eid AND r.test = 0))"
)
#: Of an inbox row ``i``: the uid's first deposit ever (read by uid: the time index would
#: scan every earlier event of the space).
_FIRST = (
    "(i.event = 'deposit' AND NOT EXISTS (SELECT 1 FROM inbox p INDEXED BY inbox_space_uid"
    " WHERE p.space_id = i.space_id AND p.uid = i.uid AND p.event = 'deposit' AND p.test = 0"
    " AND (p.occurred_at_ms < i.occurred_at_ms"
    " OR (p.occurred_at_ms = i.occurred_at_ms AND p.id < i.id))))"
)
_EVENT = f"i.event, i.occurred_at_ms, i.value, i.currency, {_REVERSED}, {_FIRST}"


def ttc_bin(duration_ms: int) -> int:
    """The bin of ``TTC_BOUNDS_S`` that holds a time to convert (bin 0: under 1 s, or below
    0: an event before its click)."""
    return bisect.bisect_right(_BOUNDS_MS, duration_ms)


@dataclass
class _Group:
    clicks: int = 0
    # event -> uid -> (first time, its click's time)
    firsts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    deposits: int = 0
    first_deposits: int = 0
    revenue: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    reversed_deposits: int = 0
    reversed_revenue: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def step(self, event: str, uid: str, at_ms: int, click_ms: int) -> None:
        seen = self.firsts.setdefault(event, {})
        known = seen.get(uid)
        if known is None or at_ms < known[0]:
            seen[uid] = (at_ms, click_ms)

    def counts(self, key: tuple[str | None, ...], names: dict[str, str]) -> GroupCounts:
        ttc: dict[str, tuple[int, ...]] = {}
        for event in CANONICAL_EVENTS:
            bins = [0] * _BINS
            for at_ms, click_ms in self.firsts.get(event, {}).values():
                bins[ttc_bin(at_ms - click_ms)] += 1
            ttc[event] = tuple(bins)
        return GroupCounts(
            key=key,
            clicks=self.clicks,
            uids={e: len(self.firsts.get(e, {})) for e in CANONICAL_EVENTS},
            deposits=self.deposits,
            first_deposits=self.first_deposits,
            revenue=self.revenue,
            reversed_deposits=self.reversed_deposits,
            reversed_revenue=self.reversed_revenue,
            ttc=ttc,
            names=names,
        )


def _add(money: dict[str, dict[str, Decimal]], currency: str, day: str, amount: Decimal) -> None:
    days = money.setdefault(currency, {})
    days[day] = days.get(day, Decimal(0)) + amount


def _amount(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:  # the inbox holds checked amounts; never count a bad one
        return None


Row = Sequence[object]
#: A click as read once per uid: kept by the filters, its key's fixed parts, its time.
_Seen = tuple[bool, tuple[str | None, ...], int]


class _Clicks:
    """Reads a click row: whether the filters keep it, and its group's key (each dimension's
    reader chosen once; the local day or hour of a time computed once per minute)."""

    def __init__(self, query: GroupQuery, tz: tzinfo) -> None:
        self.tz = tz
        self.filters = [(self._reader(f.dimension), f) for f in query.filters.items]
        self.parts = [(None, d) if d in ("day", "hour") else (self._reader(d), d) for d in query.by]
        self.timed = any(read is None for read, _ in self.parts)
        self.labels: dict[tuple[int, str], str] = {}
        self.named = [(self._reader(d), self._reader(NAME_OF[d]), d) for d in query.by
                      if d in NAME_OF]  # fmt: skip

    @staticmethod
    def _reader(dimension: str) -> Callable[[Row], str | None]:
        if dimension.startswith(SUB_ID_PREFIX):
            name = dimension[len(SUB_ID_PREFIX) :]

            def sub_id(row: Row) -> str | None:
                raw = row[_CLICK_WIDTH - 1]
                found = json.loads(str(raw)).get(name) if raw else None
                return None if found is None else str(found)

            return sub_id
        at = 2 + _DIMS.index(dimension)
        return lambda row: None if row[at] is None else str(row[at])

    def of(self, row: Row, names: dict[tuple[str, str], tuple[int, str]]) -> _Seen:
        """Whether the filters keep the click of ``row``, its key without the time parts
        (None there), and its time; the names beside its ids noted if it is kept."""
        kept = all(f.matches(read(row)) for read, f in self.filters)
        if kept:
            self.name(row, names)
        fixed = tuple(None if read is None else read(row) for read, _ in self.parts)
        return kept, fixed, int(str(row[1]))

    def key(self, fixed: tuple[str | None, ...], at_ms: int) -> tuple[str | None, ...]:
        """The group of a click (``fixed``, from ``of``), its day and hour those of ``at_ms``."""
        if not self.timed:
            return fixed
        return tuple(
            self.label(at_ms, d) if read is None else v
            for (read, d), v in zip(self.parts, fixed, strict=True)
        )

    def label(self, at_ms: int, dimension: str) -> str:
        minute = (at_ms // 60_000, dimension)
        found = self.labels.get(minute)
        if found is None:
            first = local_bucket(minute[0] * 60_000, dimension, self.tz)
            last = local_bucket(minute[0] * 60_000 + 59_999, dimension, self.tz)
            if first != last:  # a bucket starts inside this minute (an odd old offset)
                return local_bucket(at_ms, dimension, self.tz)
            found = self.labels[minute] = first
        return found

    def name(self, row: Row, names: dict[tuple[str, str], tuple[int, str]]) -> None:
        """Keep the name beside each id of ``by`` if this click is the latest with one."""
        for read, name_of, d in self.named:
            object_id, name = read(row), name_of(row)
            if object_id is None or name is None:
                continue
            seen = names.get((d, object_id))
            latest = (int(str(row[1])), name)
            if seen is None or latest > seen:
                names[(d, object_id)] = latest

    def day(self, at_ms: int) -> str:
        """The local date of ``at_ms`` (``2026-11-01``)."""
        return self.label(at_ms, "day")[:10]


def local_bucket(at_ms: int, dimension: str, tz: tzinfo) -> str:
    """The start of the day or hour of ``at_ms`` on the wall clock of ``tz``, ISO."""
    local = datetime.fromtimestamp(at_ms / 1000, tz)
    if dimension == "day":
        return datetime.combine(local.date(), time(0), tzinfo=tz).isoformat()
    return local.replace(minute=0, second=0, microsecond=0).isoformat()


def group_counts(
    conn: sqlite3.Connection, space_id: int, query: GroupQuery,
    links: Sequence[int] | None = None,
) -> list[GroupCounts]:  # fmt: skip
    """One ``GroupCounts`` per group with a click or a counted event in the window (see the
    module's docstring), in no particular order. ``links``: the ids of links that every click
    the filters keep is on (store/sqlite/cube.py knows them for a filter on campaigns, ad
    sets or ads): only those links' clicks are read, along the index by link and time."""
    tz = zone(query.tz)
    reader = _Clicks(query, tz)
    f, t = query.window.from_ms, query.window.to_ms
    groups: dict[tuple[str | None, ...], _Group] = {}
    names: dict[tuple[str, str], tuple[int, str]] = {}  # (dimension, id) -> (click time, name)

    def group(key: tuple[str | None, ...]) -> _Group:
        found = groups.get(key)
        if found is None:
            found = groups[key] = _Group()
        return found

    seen: dict[str, _Seen] = {}  # uid -> its click
    pushed = _kept(query, links)
    kept_sql, kept_args = pushed
    for row in conn.execute(
        f"SELECT {_CLICK} FROM {_clicks(links)} {_LINKS}"
        f" WHERE c.space_id = ? AND c.created_ms >= ? AND c.created_ms < ?{kept_sql}",
        (space_id, f, t, *kept_args),
    ):
        kept, fixed, click_ms = seen[str(row[0])] = reader.of(row, names)
        if kept:
            group(reader.key(fixed, click_ms)).clicks += 1
    cohort = query.mode is FunnelMode.COHORT
    events = (
        _cohort_events(conn, space_id, f, t, pushed, links)
        if cohort
        else _activity_events(conn, space_id, f, t, pushed)
    )
    for uid, row, event, at_ms, value, currency, reversed_, first in events:
        click = seen.get(uid)
        if click is None:  # activity: a click before the window
            click = seen[uid] = reader.of(row, names)
        kept, fixed, click_ms = click
        if not kept:
            continue
        when = click_ms if cohort else at_ms
        g = group(reader.key(fixed, when))
        g.step(event, uid, at_ms, click_ms)
        if event != "deposit":
            continue
        g.deposits += 1
        g.first_deposits += bool(first)
        g.reversed_deposits += reversed_
        amount = _amount(value)
        if amount is None or currency is None:
            continue
        _add(g.revenue, currency, reader.day(when), amount)
        if reversed_:
            _add(g.reversed_revenue, currency, reader.day(when), amount)
    return [g.counts(key, _names_of(query.by, key, names)) for key, g in groups.items()]


#: An event as the loop of ``group_counts`` reads it: its uid, its click's row (activity mode:
#: its click may be before the window), the event, its time, amount and currency, whether it
#: is a reversed deposit, and whether the uid's first deposit.
_Event = tuple[str, Row, str, int, str | None, str | None, bool, bool]


def _clicks(links: Sequence[int] | None) -> str:
    """The clicks ``c`` a scan reads: along the index by link and time when ``links`` names
    the links of the clicks the filters keep (``_kept`` keeps those links)."""
    return "clicks c" if links is None else "clicks c INDEXED BY clicks_link_time"


def _kept(query: GroupQuery, links: Sequence[int] | None = None) -> tuple[str, list[str]]:
    """SQL on a click ``c`` (and its link ``l``) that keeps what the filters that name values
    of a click's column keep, and its arguments: the clicks the filters drop are never read,
    nor their uids' events (a filter on a few campaigns of a busy day). Exclusions and sub-ids
    are left to ``_Clicks``, which checks every filter again (a column holds text: ``IN``
    compares as its reader does). ``links``: only clicks on those links (``group_counts``)."""
    where, args = "", list[str]()
    if links is not None:
        where += f" AND c.link_id IN ({', '.join(str(int(i)) for i in links)})"
    for f in query.filters.items:
        if f.exclude or f.dimension not in _COLUMN:  # (a sub-id: a key of the click's JSON)
            continue
        where += f" AND {_COLUMN[f.dimension]} IN ({', '.join('?' * len(f.values))})"
        args += f.values
    return where, args


def _cohort_events(
    conn: sqlite3.Connection, space_id: int, f: int, t: int, kept: tuple[str, list[str]],
    links: Sequence[int] | None,
) -> Iterator[_Event]:  # fmt: skip
    """Every event of the uids of the window's clicks: all of each uid's events are read, so
    its first deposit and its reversals are found among them. The clicks lead (CROSS JOIN):
    statistics that take a uid for a thousand events (ANALYZE's sample of the index by uid all
    of one uid) made the planner walk the space's whole inbox instead. ``kept``: ``_kept``'s
    SQL and arguments."""
    kept_sql, kept_args = kept
    rows = conn.execute(
        "SELECT c.uid, i.id, i.event, i.occurred_at_ms, i.value, i.currency, i.eid FROM"
        f" {_clicks(links)} {_LINKS} CROSS JOIN inbox i ON i.space_id = c.space_id"
        f" AND i.uid = c.uid WHERE c.space_id = ? AND c.created_ms >= ? AND c.created_ms < ?"
        f"{kept_sql} AND i.test = 0 AND i.event IN {_EVENTS_IN[:-1]}, '{REVERSAL}')",
        (space_id, f, t, *kept_args),
    ).fetchall()
    firsts: dict[str, tuple[int, int]] = {}
    taken: set[tuple[str, str]] = set()
    for uid, inbox_id, event, at_ms, _, _, eid in rows:
        if event == "deposit" and (uid not in firsts or (at_ms, inbox_id) < firsts[uid]):
            firsts[uid] = (at_ms, inbox_id)
        elif event == REVERSAL and eid is not None:
            taken.add((uid, eid))
    for uid, inbox_id, event, at_ms, value, currency, eid in rows:
        if event == REVERSAL:
            continue
        deposit = event == "deposit"
        reversed_ = deposit and eid is not None and (uid, eid) in taken
        yield (
            uid,
            (),
            event,
            at_ms,
            value,
            currency,
            reversed_,
            firsts.get(uid) == (at_ms, inbox_id),
        )


def _activity_events(
    conn: sqlite3.Connection, space_id: int, f: int, t: int, kept: tuple[str, list[str]]
) -> Iterator[_Event]:
    """The events in the window of uids with a click, each with its click (at any time), kept
    by ``kept`` (``_kept``'s SQL and arguments)."""
    kept_sql, kept_args = kept
    for row in conn.execute(
        f"SELECT {_CLICK}, {_EVENT} FROM inbox i"
        " JOIN clicks c ON c.space_id = i.space_id AND c.uid = i.uid"
        f" {_LINKS} WHERE i.space_id = ? AND i.occurred_at_ms >= ? AND i.occurred_at_ms < ?"
        f" AND i.test = 0 AND i.uid IS NOT NULL AND i.event IN {_EVENTS_IN}{kept_sql}",
        (space_id, f, t, *kept_args),
    ):
        event, at_ms, value, currency, reversed_, first = row[_CLICK_WIDTH:]
        yield str(row[0]), row, event, at_ms, value, currency, bool(reversed_), bool(first)


def _names_of(
    by: Sequence[str], key: tuple[str | None, ...], names: dict[tuple[str, str], tuple[int, str]]
) -> dict[str, str]:
    """The names beside the ids of a group's key (``campaign_name`` …) that were seen."""
    out = {}
    for d, v in zip(by, key, strict=True):
        if v is not None and (d, v) in names:
            out[NAME_OF[d]] = names[(d, v)][1]
    return out
