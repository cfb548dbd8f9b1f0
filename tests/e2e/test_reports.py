"""Reports end to end: a space seeded through the real API (links, clicks, events in the past,
duplicates, unattributed events, two currencies), its numbers read through the admin API and
the CLI, and compared with answers computed here from the seed list. Plus the live stream and
delivery health."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import IO, Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, FAST_RETRY, TLS_VERIFY, Server, ServerFactory, SpaceKeys
from tests.sink import Reply, Sink

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
H = 3_600_000
STEPS = ("contact", "subscribed", "registration", "deposit")


@dataclass
class Sent:
    uid: str | None
    event: str
    at: int
    value: str | None = None
    currency: str = "USD"


@dataclass
class Seed:
    space: SpaceKeys
    link_of: dict[str, str | None]  # uid -> slug (None: a click without a link)
    events: list[Sent]  # what the inbox holds (duplicates left out)
    t0: int  # a past hour the events cluster around
    start: int  # before every click and event of the seed
    edge: int  # a2's subscribed happened exactly here


def _post_event(http: httpx.Client, space: SpaceKeys, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post("/events", json=body, headers=space.auth)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


@pytest.fixture(scope="module")
def seed(server: Server) -> Seed:
    space = server.new_space("reports")
    now = int(time.time() * 1000)
    t0 = now - now % H - 48 * H
    with server.client() as http:
        for slug in ("alpha", "beta"):
            link = {"slug": f"{slug}-{space.id}", "kind": "bot", "target": "rep_bot"}
            r = http.post(f"/admin/spaces/{space.id}/links", headers=ADMIN, json=link)
            assert r.status_code == 201, r.text
        link_of: dict[str, str | None] = {}
        uids: dict[str, str] = {}
        for name, slug in [("a1", "alpha"), ("a2", "alpha"), ("a3", "alpha"), ("a4", "alpha"),
                           ("b1", "beta"), ("b2", "beta"), ("n1", None)]:  # fmt: skip
            body = {"link_slug": f"{slug}-{space.id}"} if slug else {}
            uid = http.post("/clicks", json=body, headers=space.auth).json()["uid"]
            uids[name] = uid
            link_of[uid] = slug
        plan = [
            ("a1", "contact", t0, None, "USD"),
            ("a1", "subscribed", t0 + 1 * H, None, "USD"),
            ("a1", "registration", t0 + 2 * H, None, "USD"),
            ("a1", "deposit", t0 + 3 * H, "10.00", "USD"),
            ("a1", "deposit", t0 + 4 * H, "5.50", "USD"),  # 2 deposits, 1 depositor
            ("a2", "contact", t0, None, "USD"),
            ("a2", "subscribed", t0 + 10 * H, None, "USD"),  # the window edge
            ("a3", "contact", t0 + 5 * H, None, "USD"),
            ("b1", "contact", t0 - 40 * H, None, "USD"),
            ("b1", "contact", t0 + 1, None, "USD"),  # a 2nd contact: still 1 uid
            ("b1", "subscribed", t0 + 2 * H, None, "USD"),
            ("b1", "registration", t0 + 3 * H, None, "USD"),
            ("b1", "deposit", t0 - 30 * H, "20", "EUR"),  # before the window: not a first
            ("b1", "deposit", t0 + 6 * H, "20.25", "EUR"),
            ("n1", "contact", t0 + 1 * H, None, "USD"),
            ("n1", "deposit", t0 + 7 * H, "7.25", "USD"),
            ("ghost", "contact", t0 + 8 * H, None, "USD"),  # a uid we never minted
        ]
        events: list[Sent] = []
        for n, (who, event, at, value, currency) in enumerate(plan):
            uid = uids.get(who, f"ghost-{space.id}")
            body: dict[str, Any] = {"uid": uid, "event": event, "occurred_at_ms": at,
                                    "eid": f"e{n}"}  # fmt: skip
            if value is not None:
                body.update(value=value, currency=currency)
            assert _post_event(http, space, body)["status"] == "queued"
            events.append(Sent(uid, event, at, value, currency))
        # a retried request is a duplicate: it counts once
        retry = {"uid": uids["a1"], "event": "deposit", "occurred_at_ms": t0 + 3 * H,
                 "eid": "e3", "value": "10.00"}  # fmt: skip
        assert _post_event(http, space, retry)["status"] == "duplicate"
        # unattributed: a Telegram user never bound to a uid
        for n, (event, value) in enumerate([("registration", None), ("deposit", "3.00")]):
            body = {"tg_id": 777, "event": event, "occurred_at_ms": t0 + 9 * H, "eid": f"u{n}"}
            if value:
                body["value"] = value
            assert _post_event(http, space, body)["attributed"] is False
            events.append(Sent(None, event, t0 + 9 * H, value, "USD"))
    return Seed(space, link_of, events, t0, start=t0 - H, edge=t0 + 10 * H)


def expected_funnel(
    seed: Seed, lo: int, hi: int, clicks: int, *, cohort: bool = False
) -> dict[str, Any]:
    """The funnel of [lo, hi) from the seed list, computed without any report code: only uids
    with a click count. ``cohort``: every click of the seed is in [lo, hi); their events at any
    time."""
    inside = [
        e for e in seed.events
        if e.uid in seed.link_of and (cohort or lo <= e.at < hi)
    ]  # fmt: skip
    steps_uids = {s: len({e.uid for e in inside if e.event == s}) for s in STEPS}
    deposits = [e for e in inside if e.event == "deposit"]
    first = {
        e.uid for e in deposits
        if cohort or min(x.at for x in seed.events if x.uid == e.uid and x.event == "deposit") >= lo
    }  # fmt: skip
    revenue: dict[str, Decimal] = {}
    for e in deposits:
        revenue[e.currency] = revenue.get(e.currency, Decimal(0)) + Decimal(str(e.value))
    return {
        "uids": {"click": clicks, **steps_uids},
        "deposits": len(deposits),
        "depositors": len({e.uid for e in deposits}),
        "first_deposits": len(first),
        "revenue": {c: format(v, "f") for c, v in sorted(revenue.items())},
    }


def check_steps(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert {s["step"]: s["uids"] for s in got["steps"]} == want["uids"]
    prev = None
    for s in got["steps"]:
        n, clicks = want["uids"][s["step"]], want["uids"]["click"]
        assert s["from_click"] == (round(n / clicks, 4) if clicks else None)
        if prev is None:
            assert s["from_previous"] is None
        else:
            assert s["from_previous"] == (round(n / prev, 4) if prev else None)
        prev = n
    for key in ("deposits", "depositors", "first_deposits", "revenue"):
        assert got[key] == want[key], key


def report(http: httpx.Client, seed: Seed, kind: str, **params: Any) -> dict[str, Any]:
    r = http.get(f"/admin/spaces/{seed.space.id}/reports/{kind}", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_funnel_of_the_whole_space(http: httpx.Client, seed: Seed) -> None:
    hi = int(time.time() * 1000) + 60_000
    got = report(http, seed, "funnel", **{"from": seed.start, "to": hi})
    want = expected_funnel(seed, seed.start, hi, clicks=7)
    check_steps(got, want)
    assert got["revenue"] == {"EUR": "20.25", "USD": "22.75"}  # and by hand: 10+5.5+7.25
    assert got["unattributed"] == {"contact": 0, "subscribed": 0, "registration": 1,
                                   "deposit": 1, "revenue": {"USD": "3.00"}}  # fmt: skip
    # the uid nobody minted: on its own line, in no step
    assert got["without_click"] == {"contact": 1, "subscribed": 0, "registration": 0,
                                    "deposit": 0, "deposits": 0, "revenue": {}}  # fmt: skip
    assert (got["from_ms"], got["to_ms"], got["link"]) == (seed.start, hi, None)
    assert got["mode"] == "activity"  # the default


def test_cohort_funnel_counts_the_windows_clicks_and_their_steps_whenever(
    http: httpx.Client, seed: Seed, server: Server
) -> None:
    """The seed's clicks are made now, its events dated up to two days before: a window of the
    last hour holds every click and none of the events."""
    now = int(time.time() * 1000)
    lo, hi = now - H, now + 60_000
    cohort = report(http, seed, "funnel", mode="cohort", **{"from": lo, "to": hi})
    assert cohort["mode"] == "cohort"
    check_steps(cohort, expected_funnel(seed, lo, hi, clicks=7, cohort=True))
    assert all(s["from_click"] <= 1 for s in cohort["steps"])
    activity = report(http, seed, "funnel", mode="activity", **{"from": lo, "to": hi})
    check_steps(activity, expected_funnel(seed, lo, hi, clicks=7))
    assert [s["uids"] for s in activity["steps"]] == [7, 0, 0, 0, 0]
    # the CLI: the same answer, and the mode in the title
    cli = server.cli_json("report", "funnel", "--space", str(seed.space.id), "--mode", "cohort",
                          "--from", str(lo), "--to", str(hi))  # fmt: skip
    assert cli == {k: v for k, v in cohort.items() if k != "ok"}
    text = server.cli("report", "funnel", "--space", str(seed.space.id), "--mode", "cohort",
                      "--from", str(lo), "--to", str(hi)).stdout  # fmt: skip
    assert "cohort mode" in text and "without a known click" in text
    r = http.get(f"/admin/spaces/{seed.space.id}/reports/funnel", params={"mode": "both"},
                 headers=ADMIN)  # fmt: skip
    assert r.status_code == 422 and r.json()["error"] == "invalid_field", r.text
    assert "mode" in r.json()["detail"]
    bad = server.cli("report", "funnel", "--space", str(seed.space.id), "--mode", "x",
                     check=False)  # fmt: skip
    assert bad.returncode == 2 and "mode" in bad.stderr


def test_gauge_compares_with_the_previous_window(http: httpx.Client, seed: Seed) -> None:
    hi = int(time.time() * 1000) + 60_000
    got = report(http, seed, "funnel", **{"from": seed.start, "to": hi})
    lo_prev = seed.start - (hi - seed.start)
    want_prev = expected_funnel(seed, lo_prev, seed.start, clicks=0)
    check_steps(got["previous"], want_prev)
    assert got["previous"]["deposits"] == 1 and got["previous"]["revenue"] == {"EUR": "20"}
    ratios = {s["step"]: s["from_previous"] for s in got["steps"][1:]}
    ranked = {k: v for k, v in ratios.items() if v is not None}
    weakest = min(ranked, key=lambda k: ranked[k])
    assert got["gauge"]["weakest"] == weakest
    assert [g["step"] for g in got["gauge"]["steps"] if g["weakest"]] == [weakest]
    before = {s["step"]: s["from_previous"] for s in got["previous"]["steps"][1:]}
    for g in got["gauge"]["steps"]:
        now, prev = ratios[g["step"]], before[g["step"]]
        assert g["change_points"] == (
            None if now is None or prev is None else round((now - prev) * 100, 2)
        )


def test_funnel_of_one_link(http: httpx.Client, seed: Seed) -> None:
    hi = int(time.time() * 1000) + 60_000
    slug = f"alpha-{seed.space.id}"
    got = report(http, seed, "funnel", link=slug, **{"from": seed.start, "to": hi})
    mine = Seed(seed.space, seed.link_of,
                [e for e in seed.events if e.uid and seed.link_of.get(e.uid) == "alpha"],
                seed.t0, seed.start, seed.edge)  # fmt: skip
    check_steps(got, expected_funnel(mine, seed.start, hi, clicks=4))
    assert got["revenue"] == {"USD": "15.50"} and got["link"] == slug


def test_window_edges_include_from_and_exclude_to(http: httpx.Client, seed: Seed) -> None:
    starting = report(http, seed, "funnel", **{"from": seed.edge, "to": seed.edge + 1})
    assert {s["step"]: s["uids"] for s in starting["steps"]}["subscribed"] == 1
    ending = report(http, seed, "funnel", **{"from": seed.edge - H, "to": seed.edge})
    assert {s["step"]: s["uids"] for s in ending["steps"]}["subscribed"] == 0


def test_per_link_report(http: httpx.Client, seed: Seed) -> None:
    hi = int(time.time() * 1000) + 60_000
    got = report(http, seed, "links", sort="deposit", **{"from": seed.start, "to": hi})
    rows = {r["link"]: r for r in got["links"]}
    alpha, beta = rows[f"alpha-{seed.space.id}"], rows[f"beta-{seed.space.id}"]
    assert (alpha["clicks"], alpha["contact"], alpha["subscribed"], alpha["deposit"]) == (
        4,
        3,
        2,
        1,
    )
    assert (alpha["deposits"], alpha["depositors"], alpha["revenue"]) == (2, 1, {"USD": "15.50"})
    assert alpha["click_to_deposit"] == 0.25
    assert alpha["revenue_per_click"] == {"USD": "3.8750"}
    assert (beta["clicks"], beta["contact"], beta["deposit"], beta["revenue"]) == (
        2, 1, 1, {"EUR": "20.25"},
    )  # fmt: skip
    assert beta["click_to_deposit"] == 0.5
    # n1 clicked without a link; "ghost" never clicked: both are "no link"
    assert (rows[None]["clicks"], rows[None]["contact"], rows[None]["deposit"]) == (1, 2, 1)
    assert [r["deposit"] for r in got["links"]] == sorted(
        [r["deposit"] for r in got["links"]], reverse=True
    )
    by_slug = report(http, seed, "links", sort="link", desc="false",
                     **{"from": seed.start, "to": hi})  # fmt: skip
    slugs = [r["link"] for r in by_slug["links"]]
    assert slugs[:2] == [f"alpha-{seed.space.id}", f"beta-{seed.space.id}"]


def test_series_day_buckets_follow_the_time_zone(
    http: httpx.Client, seed: Seed, server: Server
) -> None:
    # A space of its own: the module's seed is shared by the other tests, which xdist may run
    # after this one. One event, at 20:00 UTC: the same day in New York, the next day in Tokyo.
    space = server.new_space("tz")
    own = Seed(space, {}, [], seed.t0, seed.start, seed.edge)
    day = datetime.fromtimestamp((seed.t0 - 72 * H) / 1000, timezone.utc).date()
    at = int(datetime(day.year, day.month, day.day, 20, tzinfo=timezone.utc).timestamp() * 1000)
    uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
    body = {"uid": uid, "event": "registration", "occurred_at_ms": at, "eid": "tz"}
    _post_event(http, space, body)
    span = {"from": day.isoformat(), "to": (day + timedelta(days=2)).isoformat()}
    buckets = {}
    for tz in ("UTC", "Asia/Tokyo", "America/New_York"):
        got = report(http, own, "series", metric="registration", bucket="day", tz=tz, **span)
        buckets[tz] = [(p["start"][:10], p["value"]) for p in got["points"]]
        assert got["tz"] == tz and len(got["points"]) == 2
    d0, d1 = day.isoformat(), (day + timedelta(days=1)).isoformat()
    assert buckets["UTC"] == [(d0, 1), (d1, 0)]
    assert buckets["Asia/Tokyo"] == [(d0, 0), (d1, 1)]
    assert buckets["America/New_York"] == [(d0, 1), (d1, 0)]
    # the CLI's series is the same
    cli = server.cli_json("report", "series", "--space", str(space.id), "--metric",
                          "registration", "--tz", "Asia/Tokyo", "--from", span["from"],
                          "--to", span["to"])  # fmt: skip
    assert [p["value"] for p in cli["points"]] == [0, 1]


def test_series_is_zero_filled_and_sums_revenue_per_currency(
    http: httpx.Client, seed: Seed
) -> None:
    lo, hi = seed.t0, seed.t0 + 12 * H
    got = report(http, seed, "series", metric="revenue", currency="USD", bucket="hour",
                 **{"from": lo, "to": hi})  # fmt: skip
    assert len(got["points"]) == 12
    want = ["0"] * 12
    for e in seed.events:
        if e.event == "deposit" and e.uid and e.currency == "USD" and lo <= e.at < hi:
            i = (e.at - lo) // H
            want[i] = format(Decimal(want[i]) + Decimal(str(e.value)), "f")
    assert [p["value"] for p in got["points"]] == want
    contacts = report(http, seed, "series", metric="contact", bucket="hour",
                      **{"from": lo, "to": hi})  # fmt: skip
    assert [p["value"] for p in contacts["points"]][:2] == [3, 1]  # a1, a2, b1 at t0; n1


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("funnel", {"link": "nope"}, "link"),
        ("funnel", {"from": "2025-13-40"}, "from"),
        ("funnel", {"from": "2025-01-02", "to": "2025-01-01"}, "from"),
        ("funnel", {"days": "100000"}, "days"),
        ("funnel", {"days": "abc"}, "days"),
        ("funnel", {"tz": "Mars/Olympus"}, "tz"),
        ("series", {"metric": "likes"}, "metric"),
        ("series", {}, "metric"),
        ("series", {"metric": "deposit", "bucket": "week"}, "bucket"),
        ("series", {"metric": "contact", "bucket": "hour", "days": "365"}, "bucket"),
        ("links", {"sort": "vibes"}, "sort"),
    ],
)
def test_bad_parameters_get_a_clear_422(
    http: httpx.Client, seed: Seed, path: str, params: dict[str, str], field: str
) -> None:
    r = http.get(f"/admin/spaces/{seed.space.id}/reports/{path}", params=params, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_field" and r.json()["field"] == field


def test_reports_need_the_admin_token_or_the_spaces_bearer(
    http: httpx.Client, seed: Seed, server: Server
) -> None:
    url = f"/admin/spaces/{seed.space.id}/reports/funnel"
    assert http.get(url).status_code == 401
    assert http.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert http.get(url, headers=seed.space.auth).status_code == 200
    other = server.new_space("someone-else")
    r = http.get(url, headers=other.auth)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert http.get("/admin/spaces/99999/reports/funnel", headers=ADMIN).status_code == 404


def test_cli_funnel_json_is_the_apis(http: httpx.Client, seed: Seed, server: Server) -> None:
    hi = str(int(time.time() * 1000) + 60_000)
    api = report(http, seed, "funnel", **{"from": seed.start, "to": hi})
    cli = server.cli_json("report", "funnel", "--space", str(seed.space.id), "--from",
                          str(seed.start), "--to", hi)  # fmt: skip
    assert cli == {k: v for k, v in api.items() if k != "ok"}
    text = server.cli("report", "funnel", "--space", str(seed.space.id), "--from",
                      str(seed.start), "--to", hi).stdout  # fmt: skip
    assert "weakest" in text and "deposits 4" in text and "22.75 USD" in text
    links = server.cli_json("report", "links", "--space", str(seed.space.id), "--sort",
                            "revenue", "--currency", "EUR", "--days", "30")  # fmt: skip
    assert links["links"][0]["link"] == f"beta-{seed.space.id}"
    assert "alpha" in server.cli("report", "links", "--space", str(seed.space.id)).stdout
    bad = server.cli("report", "funnel", "--space", str(seed.space.id), "--from", "2025-02-01",
                     "--to", "2025-01-01", check=False)  # fmt: skip
    assert bad.returncode == 2 and "--from" in bad.stderr
    missing = server.cli("report", "funnel", "--space", "9999", check=False)
    assert missing.returncode == 1 and "no space" in missing.stderr


# ----------------------------------------------------------------------------- live stream


class StreamReader:
    """An SSE client in a thread: every message with the time it arrived."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.messages: queue.Queue[tuple[float, str, dict[str, Any], str]] = queue.Queue()
        self.status: int | None = None
        self.opened = threading.Event()
        self.ended = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=30), verify=TLS_VERIFY)
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        assert self.opened.wait(10)

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as r:
                self._socket = r.extensions["network_stream"].get_extra_info("socket")
                self.status = r.status_code
                self.opened.set()
                event, data, ident = "", "", ""
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line.startswith("id: "):
                        ident = line[4:]
                    elif line == "" and data:
                        self.messages.put((time.monotonic(), event, json.loads(data), ident))
                        event, data, ident = "", "", ""
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def next(self, timeout: float = 5.0) -> tuple[float, str, dict[str, Any], str]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        """Hang up as a client that goes away does: the server sees the connection end at once
        (closing the client alone leaves the socket open while the thread reads it)."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        # The reading thread ends once its read fails, leaving the response and its connection
        # closed; only then is the client closed, with nothing of it left for the collector to
        # find open later (a ResourceWarning in whichever test runs then).
        self._thread.join(10)
        self._client.close()
        if self._socket is not None:
            self._socket.close()


def test_stream_delivers_a_click_and_an_event_within_a_second(
    server: Server, http: httpx.Client
) -> None:
    mine, theirs = server.new_space("live"), server.new_space("neighbour")
    url = f"{server.url}/admin/spaces/{mine.id}/stream"
    stream = StreamReader(url, mine.auth)
    spy = StreamReader(f"{server.url}/admin/spaces/{theirs.id}/stream", theirs.auth)
    try:
        assert stream.status == 200
        uid = http.post("/clicks", json={}, headers=mine.auth).json()["uid"]
        acked = time.monotonic()
        at, kind, data, click_id = stream.next()
        assert (kind, data["uid"]) == ("click", uid) and at - acked < 1.0
        _post_event(http, mine, {"uid": uid, "event": "deposit", "value": "9.99", "eid": "x"})
        acked = time.monotonic()
        at, kind, data, _ = stream.next()
        assert (kind, data["event"], data["value"], data["uid"]) == (
            "event",
            "deposit",
            "9.99",
            uid,
        )
        assert at - acked < 1.0
        # the other space's stream saw none of it
        with pytest.raises(queue.Empty):
            spy.next(timeout=0.5)
        # another space's key cannot open this stream
        refused = http.get(f"/admin/spaces/{mine.id}/stream", headers=theirs.auth)
        assert refused.status_code == 403
        # a reconnect from the click's id resumes with the event
        again = StreamReader(url, {**ADMIN, "Last-Event-ID": click_id})
        try:
            _, kind, data, _ = again.next()
            assert (kind, data["event"]) == ("event", "deposit")
        finally:
            again.close()
    finally:
        stream.close()
        spy.close()


def test_server_stops_promptly_with_a_stream_open(start_server: ServerFactory) -> None:
    server = start_server()
    space = server.new_space("bye")
    stream = StreamReader(f"{server.url}/admin/spaces/{space.id}/stream", ADMIN)
    try:
        assert stream.status == 200
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=10)
        assert time.monotonic() - started < 5
        assert stream.ended.wait(5)
    finally:
        stream.close()


#: How long a line of `xtracker tail` may take: it prints within a second or two of its start
#: on a loaded machine; this only catches a tail that never prints.
TAIL_LINE_S = 60.0


def _tail_lines(server: Server, space: SpaceKeys, since: str, count: int) -> list[Any]:
    """The first ``count`` lines of ``xtracker tail --json --since``, each awaited at most
    ``TAIL_LINE_S`` (a thread reads the pipe: a bare ``readline()`` could wait for ever)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xtracker_server", "tail", "--space", str(space.id), "--json",
         "--since", since, "--db", str(server.db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        return [json.loads(lines.get(timeout=TAIL_LINE_S)) for _ in range(count)]
    except queue.Empty:
        raise AssertionError(f"`xtracker tail` printed no line in {TAIL_LINE_S} s") from None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        reader.join(timeout=30)  # the pipe is at its end once the process is gone
        proc.stdout.close()
        proc.stderr.close()


def _read_lines(pipe: IO[str], into: queue.Queue[str]) -> None:
    for line in pipe:
        into.put(line)


def test_cli_tail_prints_each_click_and_event(server: Server, http: httpx.Client) -> None:
    space = server.new_space("tail")
    uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
    _post_event(http, space, {"uid": uid, "event": "contact", "eid": "t"})
    # from the very start: exactly this space's two rows (a process started before them would
    # race with its own start-up on a loaded machine)
    first, second = _tail_lines(server, space, "0-0-0", 2)
    assert (first["type"], first["uid"]) == ("click", uid)
    assert (second["type"], second["event"]) == ("event", "contact")
    # each line's cursor resumes right after it
    (again,) = _tail_lines(server, space, first["cursor"], 1)
    assert (again["type"], again["event"], again["id"]) == ("event", "contact", second["id"])


def test_cli_tail_ends_when_its_space_is_deleted(server: Server, http: httpx.Client) -> None:
    space = server.new_space("tail-gone")
    uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "xtracker_server", "tail", "--space", str(space.id), "--json",
         "--since", "0-0-0", "--db", str(server.db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        # following: it printed the space's click
        assert json.loads(lines.get(timeout=TAIL_LINE_S))["uid"] == uid
        server.cli("space", "delete", "--space", str(space.id), "--yes")
        assert proc.wait(timeout=TAIL_LINE_S) == 1
        assert f"space {space.id} was deleted" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        reader.join(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


# ----------------------------------------------------------------------------- delivery health


def test_delivery_health_per_destination(start_app: ServerFactory, sink: Sink) -> None:
    sink.responder = lambda req: Reply(400, b'{"error": "bad"}') if req.path == "/bad" else Reply()
    server = start_app(*FAST_RETRY)
    space = server.new_space("health")
    for name, path in (("good", "/ok"), ("bad", "/bad")):
        server.cli("destination", "add", "--space", str(space.id), "--kind", "webhook", "--name",
                   name, "--url", f"{sink.url}{path}", "--allow-private-destinations")  # fmt: skip
    with server.client() as http:
        uid = http.post("/clicks", json={}, headers=space.auth).json()["uid"]
        for n in range(2):
            _post_event(http, space, {"uid": uid, "event": "deposit", "value": "1", "eid": str(n)})
        deadline = time.monotonic() + 20
        while True:
            data = http.get(f"/admin/spaces/{space.id}/reports/deliveries", headers=ADMIN).json()
            by_name = {d["name"]: d for d in data["destinations"]}
            if (by_name["good"]["sent"], by_name["bad"]["failed_permanently"]) == (2, 2):
                break
            assert time.monotonic() < deadline, data
            time.sleep(0.1)  # the worker settles in its own time: nothing to await across HTTP
    good, bad = by_name["good"], by_name["bad"]
    assert (good["pending"], good["retrying"], good["failed_permanently"]) == (0, 0, 0)
    assert good["last_error"] is None and good["last_success_ms"] is not None
    assert good["recent_attempts"] == 2 and good["median_latency_ms"] is not None
    assert bad["sent"] == 0 and bad["last_success_ms"] is None
    assert "400" in bad["last_error"] and bad["last_error_ms"] is not None
    assert bad["recent_failures"] == 2
    text = server.cli("report", "deliveries", "--space", str(space.id)).stdout
    assert "good" in text and "bad" in text
