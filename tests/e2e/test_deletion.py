"""Deleting and erasing against a real server and the real CLI: what a deletion takes is said
before, the DELETE answers what went, a deleted space's credentials and live streams end at
once, another space (and another space's credentials) can never delete or erase anything, and
after erasing by uid and by tg_id the reports equal a brute-force count and the erased uids
appear nowhere in the files."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, FAST_RETRY, Server, ServerFactory, SpaceKeys
from tests.e2e.test_reports import StreamReader
from tests.inprocess import cli_in_process
from tests.sink import Reply, Sink

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
STEPS = ("contact", "subscribed", "registration", "deposit")


@dataclass
class Sent:
    uid: str | None
    tg_id: int | None
    event: str
    at: int
    value: str | None = None
    currency: str = "USD"


@dataclass
class Seeded:
    space: SpaceKeys
    slug: str
    destination: int
    uids: dict[str, str] = field(default_factory=dict)  # name -> uid
    events: list[Sent] = field(default_factory=list)
    log_rows: int = 0


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    data: dict[str, Any] = r.json()
    return data


def seed(http: httpx.Client, space: SpaceKeys, sink: Sink) -> Seeded:
    """A link, a webhook to the sink, clicks (four on the link, one without), binds (the user
    222 came twice), events by uid, by tg_id only and both, and partner postbacks."""
    slug = f"del-{space.id}"
    link = {"slug": slug, "kind": "bot", "target": "erase_bot"}
    _ok(http.post(f"/admin/spaces/{space.id}/links", headers=ADMIN, json=link), 201)
    dest = {"kind": "webhook", "url": f"{sink.url}/hook/{space.id}"}
    made = _ok(http.post(f"/admin/spaces/{space.id}/destinations", headers=ADMIN, json=dest), 201)
    s = Seeded(space, slug, made["id"])
    for name in ("u1", "u2", "u3", "u4", "u5"):
        click = {"link_slug": slug} if name != "u5" else {}
        s.uids[name] = _ok(http.post("/clicks", json=click, headers=space.auth))["uid"]
    for name, tg in (("u1", 111), ("u2", 222), ("u3", 222)):
        _ok(http.post("/bind", json={"uid": s.uids[name], "tg_id": tg}, headers=space.auth))
    t0 = int(time.time() * 1000) - 3_600_000
    plan: list[tuple[str | None, int | None, str, str | None]] = [
        ("u1", None, "contact", None), ("u1", None, "deposit", "10.00"),
        ("u2", None, "registration", None), ("u3", None, "deposit", "2.50"),
        (None, 222, "subscribed", None),  # -> u3, the user's latest bind
        ("u4", 222, "contact", None),  # sent with a uid not bound to 222
        ("u4", None, "deposit", "4.00"), ("u5", None, "contact", None),
        (None, 333, "registration", None),  # a user never bound: unattributed
    ]  # fmt: skip
    for n, (who, user, event, value) in enumerate(plan):
        body: dict[str, Any] = {"event": event, "eid": f"e{n}", "occurred_at_ms": t0 + n}
        uid = s.uids[who] if who else None
        if uid:
            body["uid"] = uid
        if user:
            body["tg_id"] = user
        if value:
            body["value"] = value
        answer = _ok(http.post("/events", json=body, headers=space.auth))
        assert answer["status"] == "queued"
        attributed = uid or (s.uids["u3"] if user == 222 else None)
        s.events.append(Sent(attributed, user, event, t0 + n, value))
    # partner postbacks: a deposit of u1, one of u3 (its log row names u3 under click_id)
    for n, (param, clicker, amount) in enumerate((("uid", "u1", "5"), ("click_id", "u3", "1.5"))):
        query = {"token": space.ingest_token, param: s.uids[clicker], "event": "deposit",
                 "value": amount, "eid": f"pb{n}", "t": str(t0 + 100 + n)}  # fmt: skip
        _ok(http.get("/e", params=query))
        s.events.append(Sent(s.uids[clicker], None, "deposit", t0 + 100 + n, amount))
        s.log_rows += 1
    return s


def preview(http: httpx.Client, path: str, headers: dict[str, str] = ADMIN) -> dict[str, Any]:
    data = _ok(http.delete(path, params={"dry_run": "1"}, headers=headers))
    assert data["dry_run"] is True
    removed: dict[str, Any] = data["removed"]
    return removed


def deliveries(counts: dict[str, int]) -> int:
    return counts["deliveries_pending"] + counts["deliveries_sent"] + counts["deliveries_failed"]


def same_but_deliveries(later: dict[str, int], earlier: dict[str, int]) -> None:
    """Equal counts; deliveries in total, and attempts that may only have grown (the worker
    may send one between two looks)."""
    keep = {k for k in later if not k.startswith("deliver")}
    assert {k: later[k] for k in keep} == {k: earlier[k] for k in keep}
    assert deliveries(later) == deliveries(earlier)
    assert later["delivery_attempts"] >= earlier["delivery_attempts"]


def cli(server: Server, *args: str, answer: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``xtracker`` command (run in this process), with ``answer`` typed at its
    question."""
    return cli_in_process(server.db, *args, check=False, input=answer)


def wait_until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # the server's state seen over HTTP: nothing to await


# ----------------------------------------------------------------------------- spaces


def test_deleting_a_space_says_what_goes_then_ends_its_credentials_and_streams_at_once(
    start_app: ServerFactory, sink: Sink
) -> None:
    server = start_app(*FAST_RETRY)
    a, b = server.new_space("a"), server.new_space("b")
    with server.client() as http:
        seeded, _ = seed(http, a, sink), seed(http, b, sink)
        before = preview(http, f"/admin/spaces/{a.id}")
        assert {k: v for k, v in before.items() if not k.startswith("deliveries_")} == {
            "credentials": 2, "links": 1, "destinations": 1, "postback_aliases": 0,
            "unrecorded_clicks": 0, "clicks": 5, "events": 11, "binds": 3, "postback_log": 2,
            "delivery_attempts": before["delivery_attempts"], "costs": 0, "exchange_rates": 0,
        }  # fmt: skip
        assert deliveries(before) == 11  # the webhook gets every event
        theirs = preview(http, f"/admin/spaces/{b.id}")
        # the preview deleted nothing; only the admin token may delete, and only by id
        assert http.get(f"/admin/spaces/{a.id}/reports/funnel", headers=a.auth).status_code == 200
        for who in (a.auth, b.auth, {"Authorization": f"Bearer {a.ingest_token}"}, {}):
            r = http.delete(f"/admin/spaces/{a.id}", headers=who)
            assert (r.status_code, r.json()["error"]) == (401, "unauthorized"), r.text
            r = http.post(f"/admin/spaces/{a.id}/erase", json={"uid": "x"}, headers=who)
            assert r.status_code == 401, r.text
        assert http.delete("/admin/spaces/99999", headers=ADMIN).status_code == 404
        assert http.delete("/admin/spaces/abc", headers=ADMIN).status_code == 404
        r = http.delete(f"/admin/spaces/{a.id}", params={"dry_run": "maybe"}, headers=ADMIN)
        assert (r.status_code, r.json()["field"]) == (422, "dry_run")
        streams = [StreamReader(f"{server.url}/admin/spaces/{a.id}/stream", h)
                   for h in (a.auth, ADMIN)]  # fmt: skip
        try:
            assert all(s.status == 200 for s in streams)
            r = http.delete(f"/admin/spaces/{a.id}", headers=ADMIN)
            done = _ok(r)
            assert (done["space_id"], done["dry_run"]) == (a.id, False)
            same_but_deliveries(done["removed"], before)
            # at once: the bearer, the ingest token, the landing, the admin paths
            r = http.post("/events", json={"event": "contact", "uid": "z"}, headers=a.auth)
            assert r.status_code == 401, r.text
            assert http.get("/e", params={"token": a.ingest_token, "event": "contact",
                                          "uid": "z"}).status_code == 401  # fmt: skip
            assert http.get(f"/l/{seeded.slug}").status_code == 404
            assert http.get(f"/admin/spaces/{a.id}/links", headers=ADMIN).status_code == 404
            spaces = _ok(http.get("/admin/spaces", headers=ADMIN))["spaces"]
            assert [s["id"] for s in spaces] == [b.id]
            # the open streams end, each with a last message saying why (a poll: ~0.2 s)
            for stream in streams:
                assert stream.ended.wait(10), "the stream did not end"
                last = None
                while not stream.messages.empty():
                    last = stream.next()
                assert last is not None and last[1] == "end", last
                assert last[2]["reason"] in ("space_deleted", "credential_expired")
        finally:
            for stream in streams:
                stream.close()
        assert http.delete(f"/admin/spaces/{a.id}", headers=ADMIN).status_code == 404
        # the other space is untouched and works
        same_but_deliveries(preview(http, f"/admin/spaces/{b.id}"), theirs)
        _ok(http.post("/events", json={"event": "contact", "uid": "z1"}, headers=b.auth))
    # nothing of the space is left in the file
    with sqlite3.connect(f"file:{server.db}?mode=ro", uri=True) as db:
        for table in ("credentials", "links", "clicks", "inbox", "binds", "destinations",
                      "deliveries", "delivery_attempts", "postback_log"):  # fmt: skip
            n = db.execute(f"SELECT count(*) FROM {table} WHERE space_id = ?", (a.id,))
            assert n.fetchone()[0] == 0, table


def test_the_cli_asks_before_deleting_a_space_and_its_bearer_stops_soon(
    start_app: ServerFactory, sink: Sink
) -> None:
    server = start_app(*FAST_RETRY, "--credential-cache-s", "0.5")
    a = server.new_space("cli")
    with server.client() as http:
        seed(http, a, sink)
        said = cli(server, "space", "delete", "--space", str(a.id), answer="n\n")
        assert said.returncode == 1, said.stderr
        assert "Deleting space" in said.stdout and "clicks" in said.stdout
        assert "Nothing was deleted" in said.stderr
        assert http.get(f"/admin/spaces/{a.id}/reports/funnel", headers=a.auth).status_code == 200
        refused = cli(server, "space", "delete", "--space", str(a.id), "--json")
        assert refused.returncode == 2 and "--yes" in refused.stderr
        dry = cli(server, "space", "delete", "--space", str(a.id), "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        counted = json.loads(dry.stdout)
        assert counted["dry_run"] is True and counted["removed"]["clicks"] == 5
        gone = cli(server, "space", "delete", "--space", str(a.id), answer="y\n")
        assert gone.returncode == 0, gone.stderr
        assert f"Space {a.id} deleted" in gone.stdout

        # the server caches a credential for 0.5 s: the bearer stops within that. Asked with a
        # contact whose uid is refused (too long: the uid rules run after authentication; an
        # empty uid would be taken, as none), so that a cached bearer's last accepted event
        # cannot land in the deleted space meanwhile (the server would clean it up later, but
        # the second delete below would find it first).
        def bearer_refused() -> bool:
            r = http.post("/events", json={"event": "contact", "uid": "u" * 999}, headers=a.auth)
            assert r.status_code in (401, 422), r.text
            return r.status_code == 401

        wait_until(bearer_refused, timeout=20)
        assert http.get(f"/admin/spaces/{a.id}/links", headers=ADMIN).status_code == 404
        again = cli(server, "space", "delete", "--space", str(a.id), "--yes")
        assert again.returncode == 1 and f"no space {a.id}" in again.stderr


# ----------------------------------------------------------------------------- links, destinations


def test_a_deleted_link_stops_at_once_and_its_clicks_count_under_no_link(
    start_app: ServerFactory, sink: Sink
) -> None:
    server = start_app(*FAST_RETRY)
    a = server.new_space("links")
    window = {"days": "2"}
    with server.client() as http:
        seeded = seed(http, a, sink)
        url = f"/admin/spaces/{a.id}/links/{seeded.slug}"
        funnel = _ok(http.get(f"/admin/spaces/{a.id}/reports/funnel", params=window,
                              headers=ADMIN))  # fmt: skip
        before = preview(http, url)
        assert before == {
            "links": 1, "clicks_unlinked": 4, "events_unlinked": 9, "unrecorded_clicks": 0,
        }  # fmt: skip
        listed = _ok(http.get(f"/admin/spaces/{a.id}/links", headers=ADMIN))["links"]
        assert [x["slug"] for x in listed] == [seeded.slug]
        # another space's path names no link of this one
        other = server.new_space("other")
        r = http.delete(f"/admin/spaces/{other.id}/links/{seeded.slug}", headers=ADMIN)
        assert r.status_code == 404, r.text
        assert _ok(http.delete(url, headers=ADMIN))["removed"] == before
        assert http.get(f"/l/{seeded.slug}").status_code == 404
        assert http.get(f"/r/{seeded.slug}").status_code == 404
        assert _ok(http.get(f"/admin/spaces/{a.id}/links", headers=ADMIN))["links"] == []
        assert http.delete(url, headers=ADMIN).status_code == 404
        # the space's numbers do not move; the link's clicks now count under "no link"
        after = _ok(http.get(f"/admin/spaces/{a.id}/reports/funnel", params=window,
                             headers=ADMIN))  # fmt: skip
        assert after["steps"] == funnel["steps"] and after["revenue"] == funnel["revenue"]
        rows = _ok(http.get(f"/admin/spaces/{a.id}/reports/links", params=window,
                            headers=ADMIN))["links"]  # fmt: skip
        assert [r["link"] for r in rows] == [None]
        assert rows[0]["clicks"] == 5
        # the slug is free again
        link = {"slug": seeded.slug, "kind": "bot", "target": "erase_bot"}
        _ok(http.post(f"/admin/spaces/{a.id}/links", headers=ADMIN, json=link), 201)
        # the CLI deletes the same way
        done = cli(server, "link", "delete", "--space", str(a.id), "--slug", seeded.slug,
                   "--yes", "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["removed"] == {
            "links": 1, "clicks_unlinked": 0, "events_unlinked": 0, "unrecorded_clicks": 0,
        }  # fmt: skip


def test_a_deleted_destination_drops_its_pending_deliveries(
    start_app: ServerFactory, sink: Sink
) -> None:
    sink.default = Reply(status=503)  # nothing is ever delivered: every delivery stays due
    server = start_app(*FAST_RETRY, "--retry-cap-s", "0.3")  # retried at least every 0.3 s
    a = server.new_space("dest")
    with server.client() as http:
        seeded = seed(http, a, sink)
        sink.wait_for(11)  # the worker tried each event once at least
        url = f"/admin/spaces/{a.id}/destinations/{seeded.destination}"
        before = preview(http, url)
        assert (before["destinations"], before["deliveries_pending"]) == (1, 11)
        assert before["deliveries_sent"] == before["deliveries_failed"] == 0
        assert before["delivery_attempts"] >= 1  # the sink answered; its attempts are written
        other = server.new_space("other")
        wrong = f"/admin/spaces/{other.id}/destinations/{seeded.destination}"
        assert http.delete(wrong, headers=ADMIN).status_code == 404
        done = _ok(http.delete(url, headers=ADMIN))["removed"]
        assert {k: done[k] for k in ("destinations", "deliveries_pending")} == {
            "destinations": 1,
            "deliveries_pending": 11,
        }
        assert done["delivery_attempts"] >= before["delivery_attempts"]
        outbox = _ok(http.get(f"/admin/spaces/{a.id}/outbox", headers=ADMIN))
        assert outbox["deliveries"] == [] and outbox["counts"] == {}
        # nothing more goes out (the retry cap is 0.3 s: a few caps of silence)
        sent = len(sink.received)
        time.sleep(1)
        assert len(sink.received) == sent
        destinations = _ok(http.get(f"/admin/spaces/{a.id}/destinations", headers=ADMIN))
        assert destinations["destinations"] == []
        missing = cli(server, "destination", "delete", "--space", str(a.id), "--id",
                      str(seeded.destination), "--yes")  # fmt: skip
        assert missing.returncode == 1 and "no destination" in missing.stderr


# ----------------------------------------------------------------------------- erasure


def brute_force_funnel(events: list[Sent], clicks: int, lo: int, hi: int) -> dict[str, Any]:
    inside = [e for e in events if lo <= e.at < hi and e.uid is not None]
    deposits = [e for e in inside if e.event == "deposit"]
    revenue: dict[str, Decimal] = {}
    for e in deposits:
        if e.value is not None:
            revenue[e.currency] = revenue.get(e.currency, Decimal(0)) + Decimal(e.value)
    return {
        "steps": {"click": clicks, **{s: len({e.uid for e in inside if e.event == s})
                                      for s in STEPS}},
        "deposits": len(deposits),
        "revenue": {c: format(v.normalize(), "f") for c, v in revenue.items()},
        "unattributed": {s: sum(1 for e in events if e.uid is None and e.event == s
                                and lo <= e.at < hi) for s in STEPS},
    }  # fmt: skip


def funnel(http: httpx.Client, space: SpaceKeys, lo: int, hi: int) -> dict[str, Any]:
    got = _ok(http.get(f"/admin/spaces/{space.id}/reports/funnel",
                       params={"from": str(lo), "to": str(hi)}, headers=ADMIN))  # fmt: skip
    return {
        "steps": {s["step"]: s["uids"] for s in got["steps"]},
        "deposits": got["deposits"],
        "revenue": {c: format(Decimal(v).normalize(), "f") for c, v in got["revenue"].items()},
        "unattributed": {s: got["unattributed"][s] for s in STEPS},
    }


def files_naming(db: Path, needles: list[str]) -> list[str]:
    """Every table of the database and of its report rollup that holds one of ``needles`` in
    any column."""
    found = []
    for path in (db, db.with_name(db.stem + ".reports.db")):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master"
                                                 " WHERE type = 'table'")]  # fmt: skip
            for table in tables:
                for row in conn.execute(f"SELECT * FROM {table}"):
                    text = " ".join(str(v) for v in row)
                    found += [f"{path.name}:{table}:{n}" for n in needles if n in text]
    return found


def test_erasing_by_uid_and_by_tg_id_leaves_reports_right_and_the_uids_nowhere(
    start_app: ServerFactory, sink: Sink
) -> None:
    server = start_app(*FAST_RETRY)
    a, b = server.new_space("erase"), server.new_space("bystander")
    with server.client() as http:
        s, theirs = seed(http, a, sink), seed(http, b, sink)
        sink.wait_for(22)  # both spaces' deliveries went out: some are "sent" when erased
        lo, hi = int(time.time() * 1000) - 4 * 3_600_000, int(time.time() * 1000) + 60_000
        their_funnel = funnel(http, b, lo, hi)
        their_counts = preview(http, f"/admin/spaces/{b.id}")
        clicks = dict(s.uids)
        assert funnel(http, a, lo, hi) == brute_force_funnel(s.events, len(clicks), lo, hi)
        # by uid, over the API: the dry run says what goes, and goes
        erase = f"/admin/spaces/{a.id}/erase"
        said = _ok(http.post(erase, json={"uid": s.uids["u1"], "dry_run": True}, headers=ADMIN))
        assert said["dry_run"] is True and said["person"] == {"uid": s.uids["u1"]}
        assert {k: said["removed"][k] for k in ("clicks", "events", "binds", "postback_log")} == {
            "clicks": 1,
            "events": 3,
            "binds": 1,
            "postback_log": 1,
        }
        done = _ok(http.post(erase, json={"uid": s.uids["u1"]}, headers=ADMIN))
        same_but_deliveries(done["removed"], said["removed"])
        assert deliveries(done["removed"]) == 3
        s.events = [e for e in s.events if e.uid != s.uids["u1"]]
        del clicks["u1"]
        assert funnel(http, a, lo, hi) == brute_force_funnel(s.events, len(clicks), lo, hi)
        # the bad requests
        for body, problem in (({}, "uid"), ({"uid": "x", "tg_id": 1}, "uid"),
                              ({"tg_id": "two"}, "tg_id"), ({"uid": ""}, "uid"),
                              ({"uid": "x", "why": 1}, "why")):  # fmt: skip
            r = http.post(erase, json=body, headers=ADMIN)
            assert (r.status_code, r.json().get("field")) == (422, problem), (body, r.text)
        r = http.post("/admin/spaces/99999/erase", json={"uid": "x"}, headers=ADMIN)
        assert r.status_code == 404
        # by tg_id, with the CLI: u2 and u3 (bound to 222), the tg_id-only event, the event
        # sent with uid u4 and tg_id 222, and u3's postback and its log row
        gone = cli(server, "erase", "--space", str(a.id), "--tg-id", "222", "--yes", "--json")
        assert gone.returncode == 0, gone.stderr
        removed = json.loads(gone.stdout)["removed"]
        assert {k: removed[k] for k in ("clicks", "events", "binds", "postback_log")} == {
            "clicks": 2,
            "events": 5,
            "binds": 2,
            "postback_log": 1,
        }
        assert deliveries(removed) == 5
        u23 = (s.uids["u2"], s.uids["u3"])
        s.events = [e for e in s.events if e.uid not in u23 and e.tg_id != 222]
        del clicks["u2"], clicks["u3"]
        # the reports equal a brute-force count of what is left, at once
        assert funnel(http, a, lo, hi) == brute_force_funnel(s.events, len(clicks), lo, hi)
        assert funnel(http, b, lo, hi) == their_funnel
        same_but_deliveries(preview(http, f"/admin/spaces/{b.id}"), their_counts)
    erased = [s.uids["u1"], s.uids["u2"], s.uids["u3"]]
    assert files_naming(server.db, erased) == []
    assert files_naming(server.db, [s.uids["u4"], theirs.uids["u1"]]) != []
    with sqlite3.connect(f"file:{server.db}?mode=ro", uri=True) as db:
        for table in ("inbox", "binds"):
            n = db.execute(f"SELECT count(*) FROM {table} WHERE space_id = ? AND tg_id = 222",
                           (a.id,))  # fmt: skip
            assert n.fetchone()[0] == 0, table
        n = db.execute("SELECT count(*) FROM binds WHERE space_id = ? AND tg_id = 222", (b.id,))
        assert n.fetchone()[0] == 2  # the other space's user 222 is someone else
