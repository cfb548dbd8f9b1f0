"""A big space written fast, through the store: the databases bench/growth.py measures on.

``seed()`` writes one space the way months of traffic would have left it, with the store's own
functions in large transactions (no HTTP): links, clicks (landing visits with fbclid, cookies,
campaign fields), the bot's bearer binds, the funnel's events (``store.inbox.insert_events``,
which also fans each event out into a webhook delivery), the partner network's postbacks with
their log rows (some of them repeated), a few events of Telegram users who never clicked
(unattributed), and every delivery claimed and settled as the worker settles it
(``delivery.worker.settle``: sent, about 1 % after one retry, each attempt recorded). Then the
report rollup catches up, as the server does in the background.

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
from xtracker_server.delivery.worker import Settlement, settle
from xtracker_server.domain.clicks import ClickDraft, fbc_from_fbclid, fields_from_query, new_uid
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.destinations import DestinationInput, prepare_destination
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.domain.outbound import Outcome, Verdict
from xtracker_server.domain.postbacks import mask_token
from xtracker_server.domain.reports import Window
from xtracker_server.domain.retry import RetryPolicy
from xtracker_server.store import binds, clicks, destinations, inbox, links, outbox, postbacks
from xtracker_server.store import spaces as space_store
from xtracker_server.store.db import open_db, reports_path, transaction
from xtracker_server.store.migrations import MIGRATIONS
from xtracker_server.store.reports import funnel_counts
from xtracker_server.store.rollup import catch_up, open_rollup

#: Bump when what ``seed()`` writes changes: kept files of older versions are not reused.
SEED_VERSION = 1
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
    postback: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # event -> status

    def __len__(self) -> int:
        return len(self.clicks)


class _Writer:
    """Seeds one space; ``rng`` decides everything but the uids and secrets, which are the
    server's own (``new_uid``: random)."""

    def __init__(
        self, conn: sqlite3.Connection, seeded: Seeded, links: list[tuple[int, dict[str, str]]],
        rng: random.Random, ingest_token: str,
    ) -> None:  # fmt: skip
        self.conn, self.seeded, self.links, self.rng = conn, seeded, links, rng
        self.ingest_token = ingest_token
        self.destination = destinations.get_destination(
            conn, seeded.space_id, seeded.destination_id
        )
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
        link_id, query = self.links[link_index]
        placement = _PLACEMENTS[link_index % len(_PLACEMENTS)]
        fbclid = "IwAR" + urlsafe_b64encode(rng.randbytes(57)).decode()
        raw_query = f"{query['raw']}&placement={placement}&fbclid={fbclid}"
        fields = {**query["fields"], "placement": placement}  # type: ignore[dict-item]
        uid = new_uid()
        uid_n = rng.getrandbits(30)
        batch.clicks.append(
            ClickDraft(
                space_id=space, uid=uid, created_ms=at,
                source="landing" if rng.random() < 0.8 else "redirect", link_id=link_id,
                ip=".".join(map(str, rng.randbytes(4))),
                user_agent=_USER_AGENTS[uid_n % len(_USER_AGENTS)],
                referrer="https://m.facebook.com/", fbclid=fbclid, fbc=fbc_from_fbclid(fbclid, at),
                fbp=f"fb.1.{at - uid_n % DAY_MS}.{1_000_000_000 + rng.getrandbits(32)}",
                country=_COUNTRIES[uid_n % len(_COUNTRIES)], raw_query=raw_query, fields=fields,
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
        later = (
            ("contact", 0, 1.0),
            ("subscribed", 60_000, P_SUBSCRIBED),
            ("registration", 600_000, P_REGISTRATION),
            ("deposit", 3_600_000, P_DEPOSIT),
        )
        for step, wait_ms, p in later:
            if rng.random() >= p or drafted >= events_left:
                return drafted
            t += wait_ms + int(rng.random() * wait_ms * 24)
            if t >= self.seeded.to_ms:
                return drafted  # not yet: a recent click
            source = "postback" if by_partner and step in ("registration", "deposit") else "api"
            drafted += self.event(batch, uid, tg, step, t, source, first=True)
        if len(self.depositors) < 100_000:
            self.depositors.append((uid, tg))
        while rng.random() < P_REPEAT_DEPOSIT and drafted < events_left:
            t += 3_600_000 + int(rng.random() * 7 * DAY_MS)
            if t >= self.seeded.to_ms:
                break
            drafted += self.event(batch, uid, tg, "deposit", t, source, first=False)
        return drafted

    def event(
        self, batch: _Batch, uid: str | None, tg: int, event: str, at: int, source: str,
        *, first: bool = True,
    ) -> int:  # fmt: skip
        """Draft one event (and a repeat of a postback, now and then); ``first``: the uid's
        first event of this step. Returns 1."""
        rng, space = self.rng, self.seeded.space_id
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
            self.seeded.unattributed += 1
        else:
            self.seeded.deposits += event == "deposit"
            self.seeded.step_uids[event] += first
        if source == "postback":
            status = "sale" if event == "deposit" else "lead"
            batch.postback[len(batch.events)] = (status, None)
            if rng.random() < P_POSTBACK_REPEAT:  # the same call again: a duplicate
                batch.events.append(draft)
                batch.postback[len(batch.events)] = (status, None)
        batch.events.append(draft)
        return 1

    # ------------------------------------------------------------------ writing

    def write(self, batch: _Batch) -> None:
        conn, space = self.conn, self.seeded.space_id
        clicks.insert_clicks(conn, batch.clicks)
        self.rows["clicks"] += len(batch.clicks)
        for uid, tg, at in batch.binds:
            binds.bind(conn, space, uid, tg, at)
        self.rows["binds"] += len(batch.binds)
        outcomes = inbox.insert_events(conn, batch.events)
        received: dict[int, int] = {}
        for i, (draft, outcome) in enumerate(zip(batch.events, outcomes, strict=True)):
            received[outcome.inbox_id] = draft.received_ms
            self.rows["inbox"] += not outcome.duplicate
            self.rows["deliveries"] += outcome.deliveries
            if i in batch.postback:
                postbacks.log_postback(conn, self.log_entry(draft, outcome, batch.postback[i]))
                self.rows["postback_log"] += 1
        self.settle_all(received)

    def log_entry(
        self, draft: inbox.InboxDraft, outcome: inbox.InboxOutcome, how: tuple[str, str | None]
    ) -> postbacks.LogEntry:
        query = f"token={self.ingest_token}&status={how[0]}&uid={draft.uid}&txid={draft.eid}" + (
            f"&payout={draft.value}&currency={draft.currency}" if draft.value else ""
        )
        return postbacks.LogEntry(
            space_id=draft.space_id, at_ms=draft.received_ms,
            ip=f"203.0.113.{draft.received_ms % 254 + 1}", method="GET",
            query=mask_token(query, self.ingest_token), body=None,
            outcome="duplicate" if outcome.duplicate else "queued", status=how[0],
            event=draft.event, uid=outcome.uid, value=draft.value, currency=draft.currency,
            eid=draft.eid, inbox_id=outcome.inbox_id, click_known=True, token_name="default",
        )  # fmt: skip

    def settle_all(self, received: dict[int, int]) -> None:
        """Claim every due delivery and settle each as the worker would have, a moment after
        its event arrived: sent, or (``P_DELIVERY_RETRY``) a 503 first, sent by the next batch."""
        assert self.destination is not None
        claimed = outbox.claim(
            self.conn, self.destination.id, "growth-seed", int(time.time() * 1000),
            lease_ms=DAY_MS, limit=1 << 40,
        )  # fmt: skip
        for c in claimed:
            at = received.get(c.inbox_id)
            retry = at is not None and self.rng.random() < P_DELIVERY_RETRY
            if at is None:  # a retry of an earlier batch: its second attempt
                at = c.age_from_ms + 60_000
            latency = 20 + c.id % 280
            at += latency + 5
            if retry:
                answer, verdict = Answer(503, b"Service Unavailable", latency), _RETRY
            else:
                answer, verdict = Answer(200, b'{"ok":true}', latency), _SENT
            settle(self.conn, "growth-seed", self.policy, self.destination,
                   [Settlement(c, verdict, answer)], at)  # fmt: skip
        self.rows["attempts"] += len(claimed)


_SENT, _RETRY = Verdict(Outcome.SENT), Verdict(Outcome.RETRY, "HTTP 503")


def seed(
    path: Path,
    *,
    events: int,
    clicks_count: int | None = None,
    days: int = 30,
    link_count: int = 40,
    hot_slug: str = "hot",
    bot: str = "offer_bot",
    end_ms: int | None = None,
    sink_url: str = f"http://127.0.0.1:9{WEBHOOK_PATH}",
    rng_seed: int = 14,
    progress: Any = None,
) -> Seeded:
    """Write a new database at ``path`` with one space of ``events`` inbox rows and
    ``clicks_count`` clicks (60 % of ``events`` by default) over ``days`` days ending at
    ``end_ms`` (now), and a webhook destination at ``sink_url``."""
    started = time.perf_counter()
    end_ms = int(time.time() * 1000) if end_ms is None else end_ms
    clicks_count = int(events * 0.6) if clicks_count is None else clicks_count
    start_ms = end_ms - days * DAY_MS
    rng = random.Random(rng_seed)
    conn = open_db(str(path), sync="OFF")
    # One writer, a new file: no journal while seeding (a failed seed is thrown away), and
    # a cache that holds the indexes.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA cache_size=-3000000")
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
                    f"&ad_name=creative_{i}"
                )
                link_rows.append((link.id, {"raw": raw, "fields": fields_from_query(raw)[1]}))
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
        writer = _Writer(conn, seeded, link_rows, rng, new.ingest_token)  # type: ignore[arg-type]
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
        writer.settle_all({})  # the last retries
        conn.execute("COMMIT")
        seeded.seconds["write"] = round(time.perf_counter() - started, 1)
        conn.execute("PRAGMA journal_mode=WAL")  # what the server's file is in
    finally:
        conn.close()
    rolled = time.perf_counter()
    rollup = open_rollup(str(path))  # what the server does in the background, all at once
    try:
        catch_up(rollup)
    finally:
        rollup.close()
    seeded.seconds["rollup"] = round(time.perf_counter() - rolled, 1)
    return seeded


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
    rollup = open_rollup(str(path))  # the report over the whole span counts what was seeded
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
