"""Exports end to end (docs/reports.md#exports): every report of a seeded space read as JSON
and as CSV from the real in-process server on a real SQLite file, the CSV parsed back and
compared with the JSON; formula cells neutralised; the CLI writes the same bytes; a long
postback log streamed in bounded memory; a storage fault after the first byte never gives a
CSV that looks complete; tenancy."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, Server, ServerFactory, SpaceKeys

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CSV = {**ADMIN, "Accept": "text/csv"}
H = 3_600_000
DAY = 24 * H
FORMULA = ("=", "+", "-", "@", "\t", "\r")
UNRECORDED = ("unrecorded_bots", "unrecorded_limited", "unrecorded_dropped")
Params = dict[str, str | int]
HOSTILE_NAME = '=HYPERLINK("http://127.0.0.1/x","click")'


class Seeded:
    def __init__(self, space: SpaceKeys, other: SpaceKeys, frm: int, to: int) -> None:
        self.space, self.other, self.frm, self.to = space, other, frm, to

    def url(self, kind: str) -> str:
        if kind == "postbacks":
            return f"/admin/spaces/{self.space.id}/postbacks"
        return f"/admin/spaces/{self.space.id}/reports/{kind}"


@pytest.fixture(scope="module")
def seeded(server: Server) -> Seeded:
    """Two links, clicks, steps and deposits in USD and EUR over three days, a destination
    with a formula for a name, postbacks whose eid is a formula; and another space."""
    space, other = server.new_space("exports"), server.new_space("exports-other")
    now = int(time.time() * 1000)
    t0 = now - now % DAY - 3 * DAY
    with server.client() as http:
        for slug in ("alpha", "beta"):
            link = {"slug": f"{slug}-{space.id}", "kind": "bot", "target": "exp_bot"}
            r = http.post(f"/admin/spaces/{space.id}/links", headers=ADMIN, json=link)
            assert r.status_code == 201, r.text
        n = 0
        for day in range(3):
            for slug, clicks in (("alpha", 3), ("beta", 2)):
                for _ in range(clicks):
                    uid = http.post("/clicks", json={"link_slug": f"{slug}-{space.id}"},
                                    headers=space.auth).json()["uid"]  # fmt: skip
                    at = t0 + day * DAY + 5 * H
                    for event, value, currency in (("contact", None, None),
                                                   ("deposit", f"{day + 1}.25", "USD"),
                                                   ("deposit", "0.50", "EUR")):  # fmt: skip
                        n += 1
                        body: dict[str, Any] = {"uid": uid, "event": event, "eid": f"x{n}",
                                                "occurred_at_ms": at + n}  # fmt: skip
                        if value:
                            body.update(value=value, currency=currency)
                        r = http.post("/events", json=body, headers=space.auth)
                        assert r.status_code == 200, r.text
        for eid in ("@SUM(1+1)", "-2+3", "=1+2"):  # a network's transaction ids
            r = http.get("/e", params={"token": space.ingest_token, "event": "registration",
                                       "uid": "u-none", "eid": eid})  # fmt: skip
            assert r.status_code == 200, r.text
        r = http.get("/e", params={"token": other.ingest_token, "event": "registration",
                                   "uid": "u-theirs", "eid": "theirs"})  # fmt: skip
        assert r.status_code < 500, r.text
    # added after the events: it has no deliveries, so its numbers hold still between reads
    hook = ["--url", "http://127.0.0.1:9/hook", "--allow-private-destinations"]
    server.cli("destination", "add", "--space", str(space.id), "--kind", "webhook", "--name",
               HOSTILE_NAME, *hook)  # fmt: skip
    return Seeded(space, other, t0, t0 + 4 * DAY)  # the clicks are of today


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    """One client for the module's reads (each test's own client cost more than its reads)."""
    with server.client() as client:
        yield client


def _parse(text: str) -> list[dict[str, str]]:
    assert text.endswith("\r\n"), text[-200:]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _cell(value: Any) -> str:
    """What the JSON value must be in a CSV cell, written here without the serializer."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    text = str(value)
    if text.startswith(FORMULA):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def _funnel_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    gauge = {g["step"]: g for g in data["gauge"]["steps"]}
    before = {s["step"]: s for s in data["previous"]["steps"]}
    money = sorted({*data["revenue"], *data["unattributed"]["revenue"],
                    *data["previous"]["revenue"]})  # fmt: skip
    rows = []
    for s in data["steps"]:
        g, p, dep = gauge.get(s["step"], {}), before[s["step"]], s["step"] == "deposit"
        row = {"step": s["step"], "uids": s["uids"], "from_previous": s["from_previous"],
               "from_click": s["from_click"], "previous_uids": p["uids"],
               "previous_from_previous": p["from_previous"], "previous_from_click": p["from_click"],
               "change_points": g.get("change_points"), "weakest": g.get("weakest"),
               "unattributed": data["unattributed"].get(s["step"]),
               "deposits": data["deposits"] if dep else None,
               "first_deposits": data["first_deposits"] if dep else None,
               "previous_deposits": data["previous"]["deposits"] if dep else None}  # fmt: skip
        for prefix, totals in (("revenue_", data["revenue"]),
                               ("unattributed_revenue_", data["unattributed"]["revenue"]),
                               ("previous_revenue_", data["previous"]["revenue"])):  # fmt: skip
            for c in money:
                row[prefix + c] = totals.get(c, "0") if dep else None
        rows.append({k: _cell(v) for k, v in row.items()})
    return rows


def _links_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    money = sorted({c for r in data["links"] for c in r["revenue"]})
    rows = []
    for r in data["links"]:
        late = ("revenue", "revenue_per_click", *UNRECORDED)
        row = {k: v for k, v in r.items() if k not in late}
        row.update({f"revenue_{c}": r["revenue"].get(c, "0") for c in money})
        row.update({f"revenue_per_click_{c}": r["revenue_per_click"].get(c) for c in money})
        row.update({k: r[k] for k in UNRECORDED})
        rows.append({k: _cell(v) for k, v in row.items()})
    return rows


def _series_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    return [{k: _cell(p[k]) for k in ("start", "start_ms", "value")} for p in data["points"]]


def _postback_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for r in data["postbacks"]:
        row: dict[str, Any] = {}
        for k, v in r.items():  # conflict in its place as two columns, without attributed
            if k == "conflict":
                row.update({f"conflict_{f}": (v or {}).get(f) for f in ("value", "currency")})
            elif k != "attributed":
                row[k] = v
        rows.append({k: _cell(v) for k, v in row.items()})
    return rows


EXPECTED: dict[str, tuple[dict[str, str], Callable[[dict[str, Any]], list[dict[str, str]]]]] = {
    "funnel": ({}, _funnel_rows),
    "links": ({"sort": "revenue", "currency": "EUR"}, _links_rows),
    "series": ({"metric": "deposit", "bucket": "hour"},
               _series_rows),
    "revenue": ({"metric": "revenue", "currency": "EUR"},
                _series_rows),
    "deliveries": ({}, lambda d: [{k: _cell(v) for k, v in r.items()} for r in d["destinations"]]),
    "postbacks": ({"limit": "all"}, _postback_rows),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_report_as_csv_is_its_json(http: httpx.Client, seeded: Seeded, kind: str) -> None:
    params, rows_of = EXPECTED[kind]
    window = {} if kind in ("deliveries", "postbacks") else {"from": seeded.frm, "to": seeded.to}
    url = seeded.url("series" if kind == "revenue" else kind)
    as_json = http.get(url, params={**params, **window}, headers=ADMIN)
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"].startswith("application/json")
    data = as_json.json()
    want = rows_of(data)
    if kind == "series":  # the streamed JSON is the report it always was: every hour, in order
        assert [p["start_ms"] for p in data["points"]] == list(range(seeded.frm, seeded.to, H))
        assert sum(p["value"] for p in data["points"]) == 15  # 15 depositors, each in one hour
    assert len(want) >= {"deliveries": 1, "links": 2}.get(kind, 3), data  # rows to compare
    for how in ({"headers": CSV}, {"headers": ADMIN, "params": {"format": "csv"}}):
        r = http.get(url, params={**params, **window, **how.get("params", {})},
                     headers=how["headers"])  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.headers["content-disposition"].startswith("attachment; filename=")
        got = _parse(r.text)
        assert got == want
        header = r.text.split("\r\n", 1)[0].split(",")
        assert header == list(want[0])
        for row in got:  # no cell a spreadsheet would run as a formula
            for value in row.values():
                if value.startswith(FORMULA):
                    float(value)


def test_formula_cells_are_neutralised_and_numbers_are_not(
    http: httpx.Client, seeded: Seeded
) -> None:
    dests = _parse(http.get(seeded.url("deliveries"), headers=CSV).text)
    assert [d["name"] for d in dests] == ["'" + HOSTILE_NAME]
    eids = {r["eid"] for r in _parse(http.get(seeded.url("postbacks"), headers=CSV).text)}
    assert {"'@SUM(1+1)", "'-2+3", "'=1+2"} <= eids
    window: Params = {"from": seeded.frm, "to": seeded.to, "metric": "revenue", "currency": "EUR"}
    series = _parse(http.get(seeded.url("series"), params=window, headers=CSV).text)
    assert [p["value"] for p in series] == ["2.50", "2.50", "2.50", "0"]


def test_accept_decides_the_format(http: httpx.Client, seeded: Seeded) -> None:
    def media(accept: str | None, **params: str) -> str:
        headers = dict(ADMIN) if accept is None else {**ADMIN, "Accept": accept}
        r = http.get(seeded.url("links"), params=params, headers=headers)
        assert r.status_code == 200, r.text
        return r.headers["content-type"].split(";")[0]

    assert media(None) == "application/json"
    assert media("text/csv") == "text/csv"
    assert media("text/csv, */*;q=0.1") == "text/csv"
    assert media("text/html,application/xhtml+xml,*/*;q=0.8") == "application/json"
    assert media("application/json, text/csv;q=0.5") == "application/json"
    assert media("text/csv", format="json") == "application/json"


def test_refusals_are_json_errors_before_any_csv(http: httpx.Client, seeded: Seeded) -> None:
    for url, params, code in (
        (seeded.url("series"), {"metric": "nope"}, 422),
        (seeded.url("funnel"), {"format": "xlsx"}, 422),
        (seeded.url("funnel"), {"from": "2025-02-01", "to": "2025-01-01"}, 422),
        (seeded.url("postbacks"), {"limit": "0"}, 422),
        (seeded.url("postbacks"), {"outcome": "lost"}, 422),
        ("/admin/spaces/999999/reports/links", {}, 404),
    ):
        r = http.get(url, params=params, headers=CSV)
        assert r.status_code == code, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json()["ok"] is False and r.json()["error"], r.text


def test_a_space_reads_its_own_exports_only(http: httpx.Client, seeded: Seeded) -> None:
    own = {"Authorization": f"Bearer {seeded.space.bearer}", "Accept": "text/csv"}
    theirs = {"Authorization": f"Bearer {seeded.other.bearer}", "Accept": "text/csv"}
    ok = http.get(seeded.url("links"), headers=own)
    assert ok.status_code == 200 and f"alpha-{seeded.space.id}" in ok.text
    for kind in ("funnel", "links", "deliveries"):
        r = http.get(seeded.url(kind), headers=theirs)
        assert (r.status_code, r.headers["content-type"]) == (403, "application/json"), r.text
    r = http.get(seeded.url("series"), params={"metric": "click"}, headers=theirs)
    assert r.status_code == 403, r.text
    r = http.get(seeded.url("postbacks"), headers=own)  # the log is the operator's
    assert r.status_code == 401, r.text
    rows = _parse(http.get(seeded.url("postbacks"), params={"limit": "all"}, headers=CSV).text)
    assert rows and "u-theirs" not in {r["uid"] for r in rows}
    mine = http.get(f"/admin/spaces/{seeded.other.id}/postbacks", headers=CSV)
    assert [r["uid"] for r in _parse(mine.text)] == ["u-theirs"]


def _cli_bytes(server: Server, *args: str, as_process: bool) -> bytes:
    """What ``xtracker ARGS`` writes to stdout, byte for byte (CRLF kept): as a process, or
    run by Typer's runner in this process (the same command; its stdout's bytes)."""
    argv = [*args, "--db", str(server.db)]
    if as_process:
        proc = subprocess.run(
            [sys.executable, "-m", "xtracker_server", *argv],
            capture_output=True, timeout=60, env={**os.environ, "XTRACKER_DB": ""},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
    from typer.testing import CliRunner

    from xtracker_server.cli import app

    result = CliRunner().invoke(app, argv, env={"XTRACKER_DB": ""}, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


@pytest.mark.parametrize("kind", ["funnel", "links", "series", "deliveries", "postbacks"])
def test_the_cli_writes_what_the_api_answers(
    http: httpx.Client, seeded: Seeded, server: Server, kind: str
) -> None:
    space = str(seeded.space.id)
    window = ["--from", str(seeded.frm), "--to", str(seeded.to)]
    cases: dict[str, tuple[list[str], Params]] = {
        "funnel": (["report", "funnel", *window], {"from": seeded.frm, "to": seeded.to}),
        "links": (["report", "links", "--currency", "USD", *window],
                  {"from": seeded.frm, "to": seeded.to, "currency": "USD"}),
        "series": (["report", "series", "--metric", "contact", *window],
                   {"from": seeded.frm, "to": seeded.to, "metric": "contact"}),
        "deliveries": (["report", "deliveries"], {}),
        "postbacks": (["postback", "log", "--all"], {"limit": "all"}),
    }  # fmt: skip
    args, params = cases[kind]
    url = seeded.url(kind)
    api_csv = http.get(url, params=params, headers=CSV).text
    # Every kind is written by the same code (cli/reports.py write_export) to stdout: one of
    # them, run as a process, shows that a process's stdout carries those bytes unchanged.
    as_process = kind == "postbacks"
    csv_bytes = _cli_bytes(
        server, *args, "--space", space, "--format", "csv", as_process=as_process
    )
    assert csv_bytes == api_csv.encode()
    api_json = http.get(url, params=params, headers=ADMIN).json()
    del api_json["ok"]
    cli_json = json.loads(server.cli(*args, "--space", space, "--format", "json").stdout)
    if kind == "postbacks":  # `postback log --json` always printed the array alone
        api_json = api_json["postbacks"]
    for volatile in ("recent_attempts", "recent_failures", "last_error", "last_error_ms"):
        for d in api_json.get("destinations", []) if isinstance(api_json, dict) else []:
            d.pop(volatile)
        for d in cli_json.get("destinations", []) if isinstance(cli_json, dict) else []:
            d.pop(volatile)
    assert cli_json == api_json
    refused = server.cli(*args, "--space", space, "--format", "xml", check=False)
    assert refused.returncode == 2 and "--format" in refused.stderr


def _seed_log(db: str, space_id: int, rows: int, sub1: int = 120) -> None:
    """``rows`` postback log rows written straight into the file, as bench/growth.py seeds
    months of traffic: through the store's own bulk insert. Each query has a ``sub1`` of
    ``sub1`` characters (the log keeps up to 2,048)."""
    from xtracker_server.domain.entities import LogEntry
    from xtracker_server.store.sqlite.postbacks import log_postbacks

    now = int(time.time() * 1000) - rows  # recent: retention prunes old rows
    conn = sqlite3.connect(db, timeout=30)
    try:
        for start in range(0, rows, 5000):
            entries = [
                LogEntry(space_id=space_id, at_ms=now + i, ip="203.0.113.7",
                         method="GET", query=f"token=xt_it_…abcd&status=ftd&uid=u{i}&txid=t{i}"
                         "&payout=12.50&currency=USD&sub1=" + "s" * sub1, body=None,
                         outcome="queued", status="ftd", event="deposit", uid=f"u{i}",
                         value="12.50", currency="USD", eid=f"t{i}", click_known=False)
                for i in range(start, min(rows, start + 5000))
            ]  # fmt: skip
            log_postbacks(conn, entries)
            conn.commit()
    finally:
        conn.close()


def test_a_long_postback_log_streams_in_bounded_memory(start_app: ServerFactory) -> None:
    """10,000 rows of long queries (about 5.4 MB of CSV, 7.8 MB of JSON; about 20 MB held at
    once when read as one page) stream while this process (server and client) holds a few MB
    at most. Fewer, longer rows than a typical log: tracemalloc's cost is per allocation, and
    the bytes streamed are what the bound is about."""
    server = start_app()
    space = server.new_space("long-log")
    rows = 10_000
    _seed_log(str(server.db), space.id, rows, sub1=360)
    url = f"/admin/spaces/{space.id}/postbacks"
    for headers in (CSV, ADMIN):
        total, lines = 0, 0
        tracemalloc.start()
        try:
            with (
                httpx.Client(verify=TLS_VERIFY, base_url=server.url, timeout=60) as http,
                http.stream("GET", url, params={"limit": "all"}, headers=headers) as r,
            ):
                assert r.status_code == 200
                for chunk in r.iter_bytes():
                    total += len(chunk)
                    lines += chunk.count(b"\r\n" if headers is CSV else b'"id":')
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert lines == rows + (1 if headers is CSV else 0)
        assert total > 5_000_000, total
        assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB for {total / 1e6:.1f} MB streamed"


def test_a_storage_fault_mid_stream_never_looks_complete(
    start_app: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first page is read before the answer starts; a later page that fails ends the CSV
    with an ``#error`` line and the connection without the answer's end (the client sees an
    incomplete answer); the CLI writes the same line and exits 1."""
    from xtracker_server.store.errors import FaultReason, StoreUnavailable
    from xtracker_server.store.sqlite.sqlite_store import SqliteOperations

    server = start_app()
    space = server.new_space("faulty")
    _seed_log(str(server.db), space.id, 1200)
    real = SqliteOperations.list_postback_log

    async def faulty(self: SqliteOperations, space_id: int, **kw: Any) -> Any:
        if kw.get("before_id") is not None:
            raise StoreUnavailable(FaultReason.IO_ERROR, "disk I/O error")
        return await real(self, space_id, **kw)

    monkeypatch.setattr(SqliteOperations, "list_postback_log", faulty)
    url = f"/admin/spaces/{space.id}/postbacks"
    for headers in (CSV, ADMIN):
        got = bytearray()
        with (
            httpx.Client(verify=TLS_VERIFY, base_url=server.url, timeout=30) as http,
            pytest.raises(httpx.RemoteProtocolError),
            http.stream("GET", url, params={"limit": "all"}, headers=headers) as r,
        ):
            assert r.status_code == 200
            for chunk in r.iter_bytes():
                got += chunk
        text = got.decode()
        if headers is CSV:
            assert len(_parse(text)) == 500 + 1
            assert text.endswith(
                "#error,storage_unavailable,storage unavailable (io_error): this export is"
                " incomplete\r\n"
            )
        else:
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
    cli = server.cli("postback", "log", "--space", str(space.id), "--all", "--format", "csv",
                     check=False)  # fmt: skip
    assert cli.returncode == 1, cli
    assert cli.stdout.rstrip().endswith(
        "#error,storage_unavailable,storage unavailable (io_error): this export is incomplete"
    )
    assert "incomplete" in cli.stderr
    monkeypatch.setattr(SqliteOperations, "list_postback_log", real)
    # the store reads again
    with httpx.Client(base_url=server.url, timeout=30, verify=TLS_VERIFY) as http:
        r = http.get(url, params={"limit": "all", "format": "csv"}, headers=ADMIN)
        assert len(_parse(r.text)) == 1200
