"""A big space written fast, through the store: the databases bench/growth.py measures on.

``seed()`` writes one space the way months of traffic would have left it, with the store's own
functions in large transactions (no HTTP): links, clicks (landing visits with fbclid, cookies,
campaign fields), the bot's bearer binds, the funnel's events (``store.inbox.insert_events``:
the server's dedup and fan-out into a webhook delivery), the partner network's postbacks with
their log rows (some of them repeated), a few events of Telegram users who never clicked
(unattributed), and every delivery as the worker leaves it once settled (sent, about 1 % after
a 503 and one retry, each attempt recorded). Then the report rollup catches up, as the server
does in the background.

It is fast because nothing is written row by row: each table of a batch of a few thousand
clicks goes in a statement or a few, through the store's bulk writes (``clicks.insert_clicks``,
``binds.insert_first_binds``, ``postbacks.log_postbacks``, and ``outbox.insert_settled``, which
writes the fan-out's delivery rows settled at once instead of pending then settled), whose
tests show they write what the per-request operations write. The seed's connection alone runs
without a journal, fsync or foreign key checks, with a large cache.

``check()`` compares a seeded file with what ``seed()`` says it wrote: the schema of a fresh
database, the rows of each table, the space's funnel report over the whole span.

Not a benchmark itself: imported by bench/growth.py (and its test).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from base64 import urlsafe_b64encode
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xtracker_server.delivery.sender import Answer
from xtracker_server.domain.clicks import ClickDraft, fbc_from_fbclid, fields_from_query, new_uid
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.destinations import DestinationInput, prepare_destination
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.postbacks import mask_token
from xtracker_server.domain.reports import Window
from xtracker_server.domain.retry import RetryPolicy, classify_http
from xtracker_server.store.sqlite import (
    binds,
    clicks,
    destinations,
    inbox,
    links,
    outbox,
    postbacks,
)
from xtracker_server.store.sqlite import spaces as space_store
from xtracker_server.store.sqlite.db import open_db, reports_path, transaction
from xtracker_server.store.sqlite.migrations import MIGRATIONS
from xtracker_server.store.sqlite.reports import funnel_counts
from xtracker_server.store.sqlite.rollup import catch_up, open_rollup, with_rollup

#: Bump when what ``seed()`` writes changes: kept files of older versions are not reused.
SEED_VERSION = 4
DAY_MS = 86_400_000
#: Clicks written per store call; a transaction holds ``CLICKS_PER_COMMIT`` of them.
CLICKS_PER_BATCH = 4_000
CLICKS_PER_COMMIT = 100_000
#: The funnel of one click: the chance of each step given the one before (the mean is a
#: little over 1.67 events per click, so ``events`` is reached just before the last clicks).
P_CONTACT, P_SUBSCRIBED, P_REGISTRATION, P_DEPOSIT, P_REPEAT_DEPOSIT = 0.76, 0.66, 0.5, 0.56, 0.3
P_UNATTRIBUTED = 0.01  # per click: an event of a Telegram user who came without a click
P_POSTBACK_REPEAT = 0.03  # a partner network sends the same postback twice
P_DELIVERY_RETRY = 0.01  # a delivery's first attempt answered 503
WEBHOOK_PATH = "/hook"

_USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.38.109;FBBV/620138419;FBDV/iPhone14,5;FBMD"
    "/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/5]",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36"
    " (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36 [FB_IAB/FB4A;"
    "FBAV/467.0.0.49.101;]",
    "Mozilla/5.0 (Linux; Android 13; Redmi Note 12 Build/TKQ1.221114.001; wv) AppleWebKit"
    "/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.179 Mobile Safari/537.36"
    " Instagram 331.0.0.37.90 Android",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML,"
    " like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
)
_COUNTRIES = ("US", "BR", "IN", "DE", "ES", "MX", "TR", "ID", "PH", "UA", "PL", "NG")
_PLACEMENTS = ("Facebook_Mobile_Feed", "Instagram_Stories", "Instagram_Reels", "an")
_AMOUNTS = ("10.00", "25.00", "50.00", "100.00", "99.99")


@dataclass
class Seeded:
    """What ``seed()`` wrote, counted while writing it (``check()`` compares the file)."""

    version: int
    space_id: int
    bearer: str  # the space's secret: the benchmark's requests need it
    destination_id: int
    hot_slug: str  # a link of the space, for the /r measurement
    from_ms: int  # the span of the clicks and events
    to_ms: int
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written
    step_uids: dict[str, int] = field(default_factory=dict)  # funnel step -> distinct uids
    deposits: int = 0  # attributed deposit events
    unattributed: int = 0  # events without a uid
    seconds: dict[str, float] = field(default_factory=dict)  # "write", "rollup"

    @property
    def events(self) -> int:
        return self.rows["inbox"]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Seeded:
        return cls(**json.loads(path.read_text()))


@dataclass
class _Batch:
    """What a few thousand clicks led to, written in one go (in this order)."""

    clicks: list[ClickDraft] = field(default_factory=list)
    binds: list[tuple[str, int, int]] = field(default_factory=list)  # uid, tg_id, at
    events: list[inbox.InboxDraft] = field(default_factory=list)
    postback: dict[int, str] = field(default_factory=dict)  # event index -> the call's status

    def __len__(self) -> int:
        return len(self.clicks)


@dataclass(frozen=True)
class _Link:
    """What every click on one link shares (the placement goes with the link)."""

    id: int
    query: str  # the ad's URL parameters up to the fbclid
    fields: dict[str, str]  # the campaign and utm fields of the query


#: The answers of the webhook's sink and how the worker classifies them (delivery/adapters.py).
_OK, _UNAVAILABLE = Answer(200, b'{"ok":true}', 0), Answer(503, b"Service Unavailable", 0)
_SENT, _RETRY = classify_http(_OK.status), classify_http(_UNAVAILABLE.status)


class _Writer:
    """Seeds one space; ``rng`` decides everything but the uids and secrets, which are the
    server's own (``new_uid``: random)."""

    def __init__(
        self, conn: sqlite3.Connection, seeded: Seeded, links: list[_Link], rng: random.Random,
        ingest_token: str,
    ) -> None:  # fmt: skip
        self.conn, self.seeded, self.links, self.rng = conn, seeded, links, rng
        self.ingest_token = ingest_token
        self.policy = RetryPolicy()
        self.n = 0  # a counter for eids and Telegram ids
        self.depositors: list[tuple[str, int]] = []  # (uid, tg_id): users who come back
        self.rows = seeded.rows
        for table in ("clicks", "binds", "inbox", "postback_log", "deliveries", "attempts"):
            self.rows.setdefault(table, 0)
        for step in ("contact", "subscribed", "registration", "deposit"):
            seeded.step_uids.setdefault(step, 0)

    # ------------------------------------------------------------------ generating

    def click(self, batch: _Batch, at: int, events_left: int) -> int:
        """One landing visit and what its visitor went on to do; returns the events drafted."""
        rng, space = self.rng, self.seeded.space_id
        link_index = min(int(rng.paretovariate(1.2)) - 1, len(self.links) - 1)
        link = self.links[link_index]
        fbclid = "IwAR" + urlsafe_b64encode(rng.randbytes(57)).decode()
        uid = new_uid()
        uid_n, ip = rng.getrandbits(30), rng.getrandbits(32)
        batch.clicks.append(
            ClickDraft(
                space_id=space, uid=uid, created_ms=at,
                source="landing" if rng.random() < 0.8 else "redirect", link_id=link.id,
                ip=f"{ip >> 24}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}",
                user_agent=_USER_AGENTS[uid_n % len(_USER_AGENTS)],
                referrer="https://m.facebook.com/", fbclid=fbclid, fbc=fbc_from_fbclid(fbclid, at),
                fbp=f"fb.1.{at - uid_n % DAY_MS}.{1_000_000_000 + rng.getrandbits(32)}",
                country=_COUNTRIES[uid_n % len(_COUNTRIES)], raw_query=link.query + fbclid,
                fields=link.fields,
            )
        )  # fmt: skip
        drafted = 0
        if rng.random() < P_UNATTRIBUTED and drafted < events_left:
            self.n += 1
            tg = 7_000_000_000 + self.n  # a bot user who never clicked: no bind
            drafted += self.event(batch, None, tg, "registration", at + 5_000, "api")
        if rng.random() >= P_CONTACT or drafted >= events_left:
            return drafted
        self.n += 1
        tg = 5_000_000_000 + self.n
        t = at + 10_000 + int(rng.random() * 590_000)
        batch.binds.append((uid, tg, t))
        by_partner = link_index % 2 == 0  # half the links' offers report by postback
        to_ms = self.seeded.to_ms
        for step, wait_ms, p in _LATER:
            if rng.random() >= p or drafted >= events_left:
                return drafted
            t += wait_ms + int(rng.random() * wait_ms * 24)
            if t >= to_ms:
                return drafted  # not yet: a recent click
            source = "postback" if by_partner and step in _BY_PARTNER else "api"
            drafted += self.event(batch, uid, tg, step, t, source, first=True)
        if len(self.depositors) < 100_000:
            self.depositors.append((uid, tg))
        while rng.random() < P_REPEAT_DEPOSIT and drafted < events_left:
            t += 3_600_000 + int(rng.random() * 7 * DAY_MS)
            if t >= to_ms:
                break
            drafted += self.event(batch, uid, tg, "deposit", t, source, first=False)
        return drafted

    def event(
        self, batch: _Batch, uid: str | None, tg: int, event: str, at: int, source: str,
        *, first: bool = True,
    ) -> int:  # fmt: skip
        """Draft one event (and a repeat of a postback, now and then); ``first``: the uid's
        first event of this step. Returns 1."""
        rng, space, seeded = self.rng, self.seeded.space_id, self.seeded
        self.n += 1
        eid = None if event in ("contact", "subscribed") else f"{event[:3]}-{self.n}"
        value = currency = None
        if event == "deposit":
            r = rng.random()
            value = _AMOUNTS[int(r * 10) % 5] if r < 0.6 else f"{5 + r * 495:.2f}"
            currency = "EUR" if r * 7 % 1 < 0.15 else "USD"
        received = at + (1_000 + int(rng.random() * 119_000) if source == "postback" else 40)
        draft = inbox.InboxDraft(
            space_id=space, dedup_key=dedup_key(space, uid, tg, event, eid, at),
            event=event, uid=uid, tg_id=tg, eid=eid, value=value, currency=currency,
            occurred_at_ms=at, received_ms=received, source=source,
        )  # fmt: skip
        if uid is None:
            seeded.unattributed += 1
        else:
            seeded.deposits += event == "deposit"
            seeded.step_uids[event] += first
        if source == "postback":
            status = "sale" if event == "deposit" else "lead"
            batch.postback[len(batch.events)] = status
            if rng.random() < P_POSTBACK_REPEAT:  # the same call again: a duplicate
                batch.events.append(draft)
                batch.postback[len(batch.events)] = status
        batch.events.append(draft)
        return 1

    # ------------------------------------------------------------------ writing

    def write(self, batch: _Batch) -> None:
        """The batch's rows, each table in a statement or a few: the clicks, the bot's binds,
        the events (their deliveries written settled: ``deliver``), the postbacks' log rows."""
        conn, space, rows = self.conn, self.seeded.space_id, self.rows
        clicks.insert_clicks(conn, batch.clicks)
        binds.insert_first_binds(conn, space, batch.binds)
        outcomes = inbox.insert_events(conn, batch.events, write_deliveries=self.deliver)
        new = [o for o in outcomes if not o.duplicate]
        postbacks.log_postbacks(
            conn,
            [
                self.log_entry(batch.events[i], outcomes[i], how)
                for i, how in batch.postback.items()
            ],
        )
        rows["clicks"] += len(batch.clicks)
        rows["binds"] += len(batch.binds)
        rows["inbox"] += len(new)
        rows["deliveries"] += sum(o.deliveries for o in new)
        rows["postback_log"] += len(batch.postback)

    def log_entry(
        self, draft: inbox.InboxDraft, outcome: inbox.InboxOutcome, status: str
    ) -> postbacks.LogEntry:
        query = f"token={self.ingest_token}&status={status}&uid={draft.uid}&txid={draft.eid}" + (
            f"&payout={draft.value}&currency={draft.currency}" if draft.value else ""
        )
        return postbacks.LogEntry(
            space_id=draft.space_id, at_ms=draft.received_ms,
            ip=f"203.0.113.{draft.received_ms % 254 + 1}", method="GET",
            query=mask_token(query, self.ingest_token), body=None,
            outcome="duplicate" if outcome.duplicate else "queued", status=status,
            event=draft.event, uid=outcome.uid, value=draft.value, currency=draft.currency,
            eid=draft.eid, inbox_id=outcome.inbox_id, click_known=outcome.uid is not None,
            token_name="default",
        )  # fmt: skip

    def deliver(self, conn: sqlite3.Connection, fanned_out: list[tuple[object, ...]]) -> None:
        """The fan-out's deliveries, written as the worker leaves them a moment after their
        event arrived: sent, or (``P_DELIVERY_RETRY``) answered 503 first and sent after the
        retry policy's delay; each attempt recorded (what the worker writes:
        ``delivery.worker.outcome_rows``, then ``store.outbox.settle``)."""
        rng, delay_s = self.rng, self.policy.delay_s
        settled: list[tuple[object, ...]] = []
        attempts: list[outbox.SettledAttempt] = []
        for n, row in enumerate(fanned_out):
            inbox_id, received = row[2], row[6]  # created_ms: the fan-out's now
            assert isinstance(inbox_id, int) and isinstance(received, int)
            latency, next_ms = 20 + inbox_id % 280, received
            at, tries = received + latency + 5, 1
            if rng.random() < P_DELIVERY_RETRY:
                attempts.append((n, at, _UNAVAILABLE.status, latency, _RETRY.outcome.value,
                                 _RETRY.reason, _UNAVAILABLE.excerpt))  # fmt: skip
                next_ms = at + int(delay_s(1, rng=rng) * 1000)
                at, tries = next_ms + latency + 5, 2
            attempts.append((n, at, _OK.status, latency, _SENT.outcome.value, None, _OK.excerpt))
            settled.append(
                (*row[:5], next_ms, received, row[7], at, "sent", tries, at, _OK.status, None)
            )
        outbox.insert_settled(conn, settled, attempts)
        self.rows["attempts"] += len(attempts)


_LATER = (  # the steps after the click: (step, the least wait after the step before, chance)
    ("contact", 0, 1.0),
    ("subscribed", 60_000, P_SUBSCRIBED),
    ("registration", 600_000, P_REGISTRATION),
    ("deposit", 3_600_000, P_DEPOSIT),
)
_BY_PARTNER = ("registration", "deposit")  # the steps a partner network reports by postback


def seed(
    path: Path,
    *,
    events: int,
    clicks_count: int | None = None,
    days: int = 28,
    link_count: int = 40,
    hot_slug: str = "hot",
    bot: str = "offer_bot",
    end_ms: int | None = None,
    sink_url: str = f"http://127.0.0.1:9{WEBHOOK_PATH}",
    rng_seed: int = 14,
    cube: bool = False,
    progress: Any = None,
) -> Seeded:
    """Write a new database at ``path`` with one space of ``events`` inbox rows and
    ``clicks_count`` clicks (60 % of ``events`` by default) over ``days`` days ending at
    ``end_ms`` (now), and a webhook destination at ``sink_url``; its report rollup built with
    the report cube if ``cube``."""
    started = time.perf_counter()
    end_ms = int(time.time() * 1000) if end_ms is None else end_ms
    clicks_count = int(events * 0.6) if clicks_count is None else clicks_count
    start_ms = end_ms - days * DAY_MS
    rng = random.Random(rng_seed)
    conn = open_db(str(path), sync="OFF")
    _fast_writes(conn)
    try:
        with transaction(conn):
            new = space_store.create_space(conn, "growth", start_ms)
            space = new.space.id
            link_rows = []
            for i in range(link_count):
                slug = hot_slug if i == 0 else f"ad{i:03d}"
                link = links.create_link(
                    conn, space, slug, LinkSpec(kind=LinkKind.BOT, target=bot), start_ms
                )
                raw = (
                    f"utm_source=facebook&utm_medium=paid&utm_campaign=spring_{i % 7}"
                    f"&utm_content=ad_{i}&campaign_id=1202{i % 7:05d}&campaign_name=spring_{i % 7}"
                    f"&adset_id=2302{i % 13:05d}&adset_name=broad_{i % 13}&ad_id=3402{i:05d}"
                    f"&ad_name=creative_{i}&placement={_PLACEMENTS[i % len(_PLACEMENTS)]}"
                )
                link_rows.append(_Link(link.id, f"{raw}&fbclid=", fields_from_query(raw)[1]))
            dest = destinations.create_destination(
                conn, space,
                prepare_destination(DestinationInput(kind="webhook", url=sink_url)),  # type: ignore[arg-type]
                start_ms,
            )  # fmt: skip
            assert dest is not None
        seeded = Seeded(
            version=SEED_VERSION, space_id=space, bearer=new.bearer, destination_id=dest.id,
            hot_slug=hot_slug, from_ms=start_ms, to_ms=end_ms,
        )  # fmt: skip
        writer = _Writer(conn, seeded, link_rows, rng, new.ingest_token)
        span = end_ms - start_ms
        made = 0
        batch = _Batch()
        conn.execute("BEGIN IMMEDIATE")
        for i in range(clicks_count):
            at = start_ms + span * i // clicks_count
            made += writer.click(batch, at, events - made)
            if len(batch) >= CLICKS_PER_BATCH:
                writer.write(batch)
                batch = _Batch()
                if (i + 1) % CLICKS_PER_COMMIT < CLICKS_PER_BATCH:
                    conn.execute("COMMIT")
                    if progress:
                        progress(writer.rows, time.perf_counter() - started)
                    conn.execute("BEGIN IMMEDIATE")
        writer.write(batch)
        # Too few events yet: depositors come back (deposits in the last days), until ``events``.
        while made < events and writer.depositors:
            batch = _Batch()
            for _ in range(min(CLICKS_PER_BATCH, events - made)):
                uid, tg = rng.choice(writer.depositors)
                at = end_ms - rng.randrange(1, 3 * DAY_MS)
                made += writer.event(batch, uid, tg, "deposit", at, "api", first=False)
            writer.write(batch)
        conn.execute("COMMIT")
        seeded.seconds["write"] = round(time.perf_counter() - started, 1)
        conn.execute("PRAGMA journal_mode=WAL")  # what the server's file is in
        rolled = time.perf_counter()
        # What the server does in the background, all at once, on this connection: its cache
        # holds the clicks the rollup looks up. No fsync of a file rebuilt from the inbox if lost.
        with_rollup(conn, str(path), cube=cube)  # as the server will (XTRACKER_REPORT_CUBE)
        conn.execute("PRAGMA reports.cache_size=-1000000")
        conn.execute("PRAGMA reports.synchronous=OFF")
        catch_up(conn)
    finally:
        conn.close()
    seeded.seconds["rollup"] = round(time.perf_counter() - rolled, 1)
    return seeded


def _fast_writes(conn: sqlite3.Connection) -> None:
    """The seed's connection only: one writer on a new file, so no journal (a failed seed is
    thrown away) and no foreign key checks (``check(thorough=True)`` runs SQLite's), and a
    cache that holds the indexes."""
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA cache_size=-3000000")


# --------------------------------------------------------------------------- checking


def table_rows(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per table of what ``seed()`` writes (``attempts``: delivery_attempts)."""
    tables = {
        "clicks": "clicks",
        "binds": "binds",
        "inbox": "inbox",
        "postback_log": "postback_log",
        "deliveries": "deliveries",
        "attempts": "delivery_attempts",
    }
    return {
        name: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        for name, table in tables.items()
    }


def schema(conn: sqlite3.Connection) -> set[tuple[str, str, str]]:
    return {
        (r[0], r[1], r[2] or "")
        for r in conn.execute("SELECT type, name, sql FROM main.sqlite_master")
        if not r[1].startswith("sqlite_")
    }


def check(path: Path, seeded: Seeded, *, thorough: bool = False) -> list[str]:
    """How the file at ``path`` differs from what the server would have written and from what
    ``seed()`` said it wrote (empty: it does not). ``thorough`` adds SQLite's own integrity
    and foreign key checks (minutes on a big file)."""
    problems: list[str] = []
    fresh_conn = open_db(":memory:")
    conn = open_db(str(path))
    try:
        if schema(conn) != schema(fresh_conn):
            problems.append(
                f"schema differs from a fresh database: {sorted(schema(conn) ^ schema(fresh_conn))}"
            )
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != len(MIGRATIONS):
            problems.append(f"schema version {version}, not {len(MIGRATIONS)}")
        rows = table_rows(conn)
        if rows != seeded.rows:
            problems.append(f"rows per table {rows}, seed() wrote {seeded.rows}")
        by_status = outbox.status_counts(conn, seeded.space_id)
        if by_status != {"sent": seeded.rows["deliveries"]}:
            problems.append(f"deliveries by status {by_status}: not all sent")
        if thorough:
            for pragma in ("quick_check", "foreign_key_check"):
                found = [tuple(r) for r in conn.execute(f"PRAGMA {pragma}")]
                if found not in ([("ok",)], []):
                    problems.append(f"PRAGMA {pragma}: {found[:5]}")
    finally:
        conn.close()
        fresh_conn.close()
    # the report over the whole span counts what was seeded (the rollup as built: cube or not)
    rollup = open_rollup(str(path), cube=None)
    try:
        catch_up(rollup)
        counts = funnel_counts(rollup, seeded.space_id, Window(seeded.from_ms, seeded.to_ms))
    finally:
        rollup.close()
    expected = {"click": seeded.rows["clicks"], **seeded.step_uids}
    if counts.uids != expected:
        problems.append(f"the funnel report counts {counts.uids}, seed() wrote {expected}")
    if counts.deposits != seeded.deposits:
        problems.append(f"the report counts {counts.deposits} deposits, not {seeded.deposits}")
    if sum(counts.unattributed.values()) != seeded.unattributed:
        problems.append(
            f"the report counts {counts.unattributed} unattributed, not {seeded.unattributed}"
        )
    return problems


def remove(path: Path) -> None:
    """The database at ``path`` and everything next to it (WAL, shared memory, rollup)."""
    for name in (str(path), reports_path(str(path))):
        for suffix in ("", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)


# --------------------------------------------------------------------------- measuring


def add_clicks(path: Path, seeded: Seeded, count: int) -> list[str]:
    """``count`` new clicks on the hot link that nobody has bound yet (the uids POST /bind
    binds); returns their uids."""
    now = int(time.time() * 1000)
    conn = open_db(str(path))
    try:
        hot = links.link_by_slug(conn, seeded.space_id, seeded.hot_slug)
        assert hot is not None
        drafts = [
            ClickDraft(space_id=seeded.space_id, uid=new_uid(), created_ms=now, source="redirect",
                       link_id=hot.id, ip="198.51.100.7", user_agent=_USER_AGENTS[0])
            for _ in range(count)
        ]  # fmt: skip
        with transaction(conn):
            for start in range(0, count, CLICKS_PER_BATCH):
                clicks.insert_clicks(conn, drafts[start : start + CLICKS_PER_BATCH])
    finally:
        conn.close()
    return [d.uid for d in drafts]


def add_backlog(path: Path, seeded: Seeded, uids: list[str], count: int) -> int:
    """``count`` new deposits of ``uids`` (in turn), each owing the webhook a delivery: a
    backlog for the worker. Returns the deliveries created."""
    now = int(time.time() * 1000)
    space = seeded.space_id
    drafts = []
    for i in range(count):
        uid, eid = uids[i % len(uids)], f"backlog-{now}-{i}"
        drafts.append(
            inbox.InboxDraft(
                space_id=space, dedup_key=dedup_key(space, uid, None, "deposit", eid, now),
                event="deposit", uid=uid, tg_id=None, eid=eid, value="25.00", currency="USD",
                occurred_at_ms=now, received_ms=now, source="api",
            )
        )  # fmt: skip
    conn = open_db(str(path))
    try:
        with transaction(conn):
            outcomes = inbox.insert_events(conn, drafts)
    finally:
        conn.close()
    return sum(o.deliveries for o in outcomes)


def point_webhook(path: Path, seeded: Seeded, url: str) -> None:
    """Send the space's webhook to ``url`` (the sink of this run)."""
    conn = open_db(str(path))
    try:
        with transaction(conn):
            destinations.update_destination(
                conn, seeded.space_id, seeded.destination_id, int(time.time() * 1000),
                config={"url": url, "method": "POST", "headers": {}},
            )  # fmt: skip
    finally:
        conn.close()
