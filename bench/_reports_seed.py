"""The space bench/reports.py measures: a media buyer's month of Facebook traffic, written fast.

The shape (``Layout``, drawn from a fixed seed, so the same at every size; only the number of
events changes):

    campaigns   300 (``--campaigns``), each with 2 to 6 ad sets, each on one of the ``--links``
                landing links (a campaign's ads all send to its link); about 5 % of campaigns
                renamed halfway through their life (the latest name is the one reports show)
    ads         10,000 (``--ads``) spread over the campaigns' ad sets. An ad lives a span of
                days, not the whole month: it starts within the first 5 days of its campaign
                (campaigns start anywhere in the month) and runs 1 to 14 days (shorter spans
                likelier), cut at the end of the month. Its budget (a log-normal weight) times its
                days is its share of the clicks, so a few ads take most of them.
    clicks      at a time of day drawn from a diurnal curve (quiet at night, busy in the evening,
                UTC), on a day of the ad's span; with the campaign, ad set and ad ids and names,
                Facebook's placement, utm_source (from the placement), utm_medium, utm_campaign
                (campaign name), utm_content (ad name), utm_term (ad set name), a country (12, US
                the most), a device type / OS / browser triple as domain/devices.py names them,
                with a user agent, an IP and an fbclid, and the space's declared sub-id
                ``creative`` (each ad has one of 8 variants)
    uids        one per click, reaching 0 to 4 steps (contact, subscribed, registration, deposit)
                with the ad's own conversion rates (each drawn: some ads leak early, some late);
                depositors may deposit again (up to 3 deposits), in USD (85 %) or EUR, amounts
                from a few fixed offers or free; about 3 % of deposits reversed
                (``deposit.reversed`` naming the deposit's eid, 1 to 10 days later); steps a few
                minutes to days apart, and none after the month's end (not happened yet)
    beside      about 1 % of the events have a uid without a click (a partner's made-up uid),
                0.3 % no uid at all (a Telegram user who never clicked: unattributed), and 0.1 %
                are test deposits of a clicked uid (``test = 1``: never counted)

``events`` is every inbox row (all of the above). No costs are seeded: ``group_counts`` does not
read them. Rows are written with plain SQL into the real schema (every migration) in one
transaction, without a journal (the ingest path would take hours; bench/ingest.py measures it).

Not a benchmark itself: imported by bench/reports.py (and its test).
"""

from __future__ import annotations

import bisect
import json
import math
import random
import sqlite3
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from xtracker_server.domain.dedup import dedup_key
from xtracker_server.domain.links import LinkKind, LinkSpec
from xtracker_server.store.sqlite import links, spaces
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_wire import REVERSAL

#: Bump when what ``seed()`` writes changes: cached files of older versions are not reused.
SEED_VERSION = 6
#: The seeded data ends here (fixed, so a cached file gives the same answers).
END_MS = 1_748_736_000_000  # 2025-06-01T00:00:00Z
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
#: The sub-id parameter the space declares (clicks.sub_ids).
SUB_ID = "creative"
STEPS = ("contact", "subscribed", "registration", "deposit")

COUNTRIES = (("US", 35), ("CA", 8), ("GB", 10), ("DE", 8), ("FR", 6), ("BR", 8), ("IN", 7),
             ("MX", 5), ("ES", 4), ("IT", 4), ("AU", 3), ("PL", 2))  # fmt: skip
# (device, os, browser, user agent) as domain/devices.py reads them, and a weight
_IOS = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
_AND = "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko)"
_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
AGENTS = (
    (("mobile", "iOS", "Mobile Safari", _IOS + " Version/17.4 Mobile/15E148 Safari/604.1"), 15),
    (("mobile", "iOS", "Facebook", _IOS + " Mobile/21E236 [FBAN/FBIOS;FBAV/460.0.0.36.109]"), 20),
    (("mobile", "iOS", "Instagram", _IOS + " Mobile/21E236 Instagram 330.0.3.12.235"), 10),
    (("mobile", "Android", "Facebook", _AND + " Chrome/124.0 Mobile Safari/537.36 [FB_IAB/FB4A]"),
     15),
    (("mobile", "Android", "Chrome Mobile", _AND + " Chrome/124.0.6367.82 Mobile Safari/537.36"),
     12),
    (("mobile", "Android", "Instagram", _AND + " Chrome/124.0 Mobile Safari/537.36 Instagram 330"),
     6),
    (("mobile", "Android", "Samsung Internet", _AND + " SamsungBrowser/25.0 Chrome/121.0 Mobile"),
     4),
    (("tablet", "iOS", "Mobile Safari", "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) Safari"), 3),
    (("tablet", "Android", "Chrome", "Mozilla/5.0 (Linux; Android 13; SM-X710) Chrome/124.0"), 2),
    (("desktop", "Windows", "Chrome", _WIN + " Chrome/124.0.0.0 Safari/537.36"), 7),
    (("desktop", "Mac OS X", "Safari", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Safari/605"),
     3),
    (("desktop", "Windows", "Edge", _WIN + " Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"), 2),
    (("desktop", "Linux", "Firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Firefox/125.0"), 1),
)  # fmt: skip
PLACEMENTS = (("Facebook_Mobile_Feed", 35), ("Instagram_Feed", 20), ("Instagram_Stories", 15),
              ("Facebook_Mobile_Reels", 10), ("Instagram_Reels", 10), ("Facebook_Stories", 5),
              ("Audience_Network", 3), ("Messenger_Inbox", 2))  # fmt: skip
_SOURCE = {"Facebook": "facebook", "Instagram": "instagram", "Audience": "an", "Messenger": "fb"}
#: Clicks per hour of the day (UTC), relative.
DIURNAL = (3, 2, 1, 1, 1, 2, 3, 5, 6, 7, 7, 8, 8, 8, 8, 9, 9, 10, 11, 12, 12, 10, 7, 5)
OFFERS = ("casino-br", "casino-ca", "betting-uk", "crypto-de", "dating-us", "forex-in")


@dataclass(frozen=True)
class Ad:
    campaign: int  # index into Layout.campaigns
    ad_id: str
    ad_name: str
    adset_id: str
    adset_name: str
    first_day: int  # its span: days [first_day, last_day] of the month, 0-based
    last_day: int
    weight: float  # its share of the clicks (budget x days)
    quality: tuple[float, float, float, float]  # P(next step) for contact .. deposit
    creative: str


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    renamed: str | None  # its name from ``renamed_ms`` on
    renamed_ms: int
    link: int  # index into the space's links


@dataclass(frozen=True)
class Layout:
    campaigns: tuple[Campaign, ...]
    ads: tuple[Ad, ...]
    days: int

    def campaign_weight_between(self, first_day: int, last_day: int) -> list[float]:
        """Per campaign, its ads' expected share of the clicks on days [first_day, last_day]."""
        out = [0.0] * len(self.campaigns)
        for ad in self.ads:
            overlap = min(ad.last_day, last_day) - max(ad.first_day, first_day) + 1
            if overlap > 0:
                out[ad.campaign] += ad.weight * overlap / (ad.last_day - ad.first_day + 1)
        return out


def layout(*, campaigns: int, ads: int, links: int, days: int) -> Layout:
    """The campaigns and ads of the month (the same for every number of events)."""
    rng = random.Random(17_0006)
    made: list[Campaign] = []
    starts: list[int] = []
    adsets: list[int] = []
    for c in range(campaigns):
        offer = OFFERS[c % len(OFFERS)]
        name = f"C{c:03d} {offer} {rng.choice(('broad', 'lal-1%', 'interests', 'retarget'))}"
        start = rng.randrange(max(1, days - 2))
        renamed = rng.random() < 0.05
        made.append(Campaign(
            campaign_id=f"120210{c:012d}", name=name, renamed=f"{name} v2" if renamed else None,
            renamed_ms=END_MS - (days - start - (days - start) // 2) * DAY_MS,
            link=rng.randrange(links),
        ))  # fmt: skip
        starts.append(start)
        adsets.append(rng.randint(2, 6))
    out: list[Ad] = []
    for a in range(ads):
        c = a % campaigns
        s = a // campaigns % adsets[c]
        first = min(days - 1, starts[c] + rng.randrange(6))
        span = min(1 + int(rng.expovariate(1 / 4)), 14)
        last = min(days - 1, first + span - 1)
        kind = rng.choice(("video", "image", "carousel"))
        out.append(Ad(
            campaign=c, ad_id=f"120212{a:012d}", ad_name=f"ad{a:05d} {kind}",
            adset_id=f"120211{c:08d}{s:04d}", adset_name=f"{made[c].name} / set {s}",
            first_day=first, last_day=last,
            weight=rng.lognormvariate(0, 1.2) * (last - first + 1),
            quality=(rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.6),
                     rng.uniform(0.1, 0.5)),
            creative=f"v{rng.randint(1, 8)}",
        ))  # fmt: skip
    return Layout(tuple(made), tuple(out), days)


@dataclass
class Seeded:
    """What ``seed()`` wrote (its test checks the file against it)."""

    events: int = 0
    clicks: int = 0
    deposits: int = 0
    reversals: int = 0
    without_click: int = 0
    unattributed: int = 0
    tests: int = 0


def seed(path: Path, *, events: int, links_n: int, campaigns: int, ads: int, days: int) -> Seeded:
    """Write the space (``layout``) with ``events`` inbox rows into a new file at ``path``."""
    plan = layout(campaigns=campaigns, ads=ads, links=links_n, days=days)
    rng = random.Random(20250601)
    start_ms = END_MS - days * DAY_MS
    conn = open_db(str(path), sync="OFF")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    done = Seeded()
    try:
        with transaction(conn):
            space = spaces.create_space(conn, "bench-reports", start_ms).space.id
            spaces.set_sub_id_params(conn, space, (SUB_ID,))
            link_ids = [
                links.create_link(conn, space, f"ad{i:03d}",
                                  LinkSpec(kind=LinkKind.BOT, target="bench_bot"), start_ms).id
                for i in range(links_n)
            ]  # fmt: skip
            # The time indexes are built once at the end (faster than row by row); the uid index
            # stays: the trigger on clicks reads it for every click.
            indexes = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                " AND tbl_name IN ('clicks', 'inbox') AND name != 'inbox_space_uid'"
            ).fetchall()
            for name, _ in indexes:
                conn.execute(f"DROP INDEX {name}")
            writer = _Writer(conn, space, link_ids, plan, rng, start_ms, done)
            writer.run(events)
            for _, sql in indexes:
                conn.execute(sql)
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return done


def _cumulative(pairs: tuple[tuple[Any, int], ...]) -> tuple[list[Any], list[float]]:
    return [p[0] for p in pairs], list(accumulate(float(p[1]) for p in pairs))


class _Writer:
    """Draws clicks and their uids' events, and writes them in batches."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        space: int,
        link_ids: list[int],
        plan: Layout,
        rng: random.Random,
        start_ms: int,
        done: Seeded,
    ) -> None:
        self.conn, self.space, self.link_ids, self.plan, self.rng = conn, space, link_ids, plan, rng
        self.start_ms, self.done = start_ms, done
        self.ad_cum = list(accumulate(ad.weight for ad in plan.ads))
        self.countries = _cumulative(COUNTRIES)
        self.agents = _cumulative(AGENTS)
        self.placements = _cumulative(PLACEMENTS)
        self.hours = list(accumulate(float(h) for h in DIURNAL))
        self.clicks: list[tuple[Any, ...]] = []
        self.inbox: list[tuple[Any, ...]] = []
        self.sub_ids = {ad.creative: json.dumps({SUB_ID: ad.creative}) for ad in plan.ads}

    def pick(self, table: tuple[list[Any], list[float]]) -> Any:
        values, cum = table
        return values[bisect.bisect(cum, self.rng.random() * cum[-1])]

    def run(self, events: int) -> None:
        rng, done = self.rng, self.done
        n = 0
        while done.events < events:
            n += 1
            roll = rng.random()
            if roll < 0.004:  # ~1 % of the events: a uid without a click (about 2.5 events each)
                self.uid_without_click(n, events)
            elif roll < 0.0072:  # ~0.3 %: a Telegram user who never clicked (no uid)
                self.unattributed(n)
            else:
                self.click(n, events)
            if len(self.inbox) >= 50_000 or len(self.clicks) >= 50_000:
                self.flush()
        self.flush()

    def click(self, n: int, events: int) -> None:
        rng, plan = self.rng, self.plan
        ad = plan.ads[bisect.bisect(self.ad_cum, rng.random() * self.ad_cum[-1])]
        campaign = plan.campaigns[ad.campaign]
        day = rng.randint(ad.first_day, ad.last_day)
        hour = bisect.bisect(self.hours, rng.random() * self.hours[-1])
        t = self.start_ms + day * DAY_MS + hour * HOUR_MS + rng.randrange(HOUR_MS)
        uid = f"u{n:015d}"
        name = campaign.name
        if campaign.renamed is not None and t >= campaign.renamed_ms:
            name = campaign.renamed
        device, os_name, browser, agent = self.pick(self.agents)
        placement = self.pick(self.placements)
        self.clicks.append((
            self.space, uid, self.link_ids[campaign.link], "landing", t,
            f"{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}.{n % 251 + 1}", agent, f"IwAR{n:044d}",
            self.pick(self.countries), campaign.campaign_id, name, ad.adset_id, ad.adset_name,
            ad.ad_id, ad.ad_name, placement, _SOURCE[placement.split("_")[0]], "paid_social",
            name, ad.ad_name, ad.adset_name, device, os_name, browser, self.sub_ids[ad.creative],
        ))  # fmt: skip
        self.done.clicks += 1
        if rng.random() < 0.001 and t + 60_000 < END_MS:  # the bot owner's test: never counted
            self.event(uid, "deposit", ("1.00", "USD"), t + 60_000, n, eid=f"t{n}", test=True)
        delays = (3_600_000, 6 * HOUR_MS, DAY_MS, 3 * DAY_MS)
        for step, p, delay in zip(STEPS, ad.quality, delays, strict=True):
            if rng.random() > p or self.done.events >= events:
                return
            t += rng.randrange(60_000, delay)
            if t >= END_MS:
                return
            if step != "deposit":
                self.event(uid, step, None, t, n)
        self.deposits(uid, t, n, events)

    def deposits(self, uid: str, t: int, n: int, events: int) -> None:
        rng = self.rng
        for k in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
            if k:
                t += rng.randrange(HOUR_MS, 7 * DAY_MS)
            if t >= END_MS or self.done.events >= events:
                return
            value = rng.choice(("10.00", "25.00", "50.00", "100.00", "99.99"))
            if rng.random() < 0.4:
                value = f"{rng.randrange(500, 50_000) / 100:.2f}"
            currency = "EUR" if rng.random() < 0.15 else "USD"
            eid = f"e{n}.{k}"
            self.event(uid, "deposit", (value, currency), t, n, eid=eid)
            self.done.deposits += 1
            back = t + rng.randrange(DAY_MS, 10 * DAY_MS)
            if rng.random() < 0.03 and back < END_MS and self.done.events < events:
                self.event(uid, REVERSAL, None, back, n, eid=eid)
                self.done.reversals += 1

    def uid_without_click(self, n: int, events: int) -> None:
        rng = self.rng
        uid = f"x{n:015d}"
        t = self.start_ms + rng.randrange(self.plan.days * DAY_MS)
        for step in STEPS[: rng.randint(1, 4)]:
            if t >= END_MS or self.done.events >= events:
                return
            money = ("10.00", "USD") if step == "deposit" else None
            self.event(uid, step, money, t, n)
            self.done.without_click += 1
            self.done.deposits += step == "deposit"
            t += rng.randrange(60_000, HOUR_MS)

    def unattributed(self, n: int) -> None:
        t = self.start_ms + self.rng.randrange(self.plan.days * DAY_MS)
        self.event(None, self.rng.choice(STEPS[:3]), None, t, n)
        self.done.unattributed += 1

    def event(
        self,
        uid: str | None,
        event: str,
        money: tuple[str, str] | None,
        at: int,
        n: int,
        *,
        eid: str | None = None,
        test: bool = False,
    ) -> None:
        tg_id = None if uid is not None else 10_000_000 + n
        eid = eid or f"e{n}.{event}"
        key = dedup_key(self.space, uid, tg_id, event, eid, at, test=test)
        value, currency = money if money else (None, None)
        self.inbox.append((self.space, key, event, uid, tg_id, eid, value, currency, at, at,
                           "api", "request" if uid else None, int(test)))  # fmt: skip
        self.done.events += 1
        self.done.tests += test

    def flush(self) -> None:
        self.conn.executemany(_CLICKS, self.clicks)
        self.conn.executemany(_INBOX, self.inbox)
        self.clicks.clear()
        self.inbox.clear()


_CLICK_COLUMNS = (
    "space_id", "uid", "link_id", "source", "created_ms", "ip", "user_agent", "fbclid", "country",
    "campaign_id", "campaign_name", "adset_id", "adset_name", "ad_id", "ad_name", "placement",
    "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "device", "os",
    "browser", "sub_ids",
)  # fmt: skip
_CLICKS = (
    f"INSERT INTO clicks ({', '.join(_CLICK_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_CLICK_COLUMNS))})"
)
_INBOX = (
    "INSERT INTO inbox (space_id, dedup_key, event, uid, tg_id, eid, value, currency,"
    " occurred_at_ms, received_ms, source, attributed_by, test)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def top_campaigns(plan: Layout, *, last_days: int, count: int) -> list[str]:
    """The ids of the ``count`` campaigns with the most expected clicks in the last days."""
    weights = plan.campaign_weight_between(plan.days - last_days, plan.days - 1)
    order = sorted(range(len(weights)), key=lambda c: (-weights[c], c))
    return [plan.campaigns[c].campaign_id for c in order[:count] if not math.isclose(weights[c], 0)]
