"""A report while the report rollup is being built (a new rollup over a large inbox, a rebuild,
the report cube turned on): it answers 503 with reason ``rebuilding`` and how far the build is
after ``XTRACKER_REPORT_WAIT_S``, rather than waiting for all of it, while housekeeping goes on
building it a slice at a time (tests/server/test_rollup_gaps.py: a catch-up given a time keeps
its rounds, and the next goes on from there)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, ServerFactory
from xtracker_server.clock import now_ms
from xtracker_server.store.sqlite import spaces
from xtracker_server.store.sqlite.db import open_db, transaction
from xtracker_server.store.sqlite.rollup import SLICE_CHUNK

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Twenty rounds of a catch-up given a time and one event, each uid with a click, with the
#: report cube on: a build of over ten seconds on a fast machine (the cube works out each uid's
#: share; four rounds were done before the first request there), so a request made as the
#: server starts finds it under way. The test does not wait for the build to end.
EVENTS = 20 * SLICE_CHUNK + 1
#: Only to catch a hang.
HANG_S = 120.0


def _seed(db: Path) -> int:
    """A space whose inbox holds EVENTS contacts of distinct uids, each with its click, written
    with plain SQL before the server starts (nothing of it is rolled up yet); returns the
    space's id."""
    at = now_ms() - 3_600_000
    conn = open_db(str(db))
    try:
        with transaction(conn):
            space = spaces.create_space(conn, "big", at).space.id
            conn.executemany(
                "INSERT INTO inbox (space_id, dedup_key, event, uid, occurred_at_ms,"
                " received_ms, source) VALUES (?, ?, 'contact', ?, ?, ?, 'api')",
                ((space, f"k{i}".encode(), f"u{i}", at, at) for i in range(EVENTS)),
            )
            conn.executemany(
                "INSERT INTO clicks (space_id, uid, source, created_ms, country)"
                " VALUES (?, ?, 'api', ?, 'US')",
                ((space, f"u{i}", at - 60_000) for i in range(EVENTS)),
            )
    finally:
        conn.close()
    return space


def test_a_report_answers_503_rebuilding_while_the_rollup_is_built_and_the_build_goes_on(
    start_app: ServerFactory, tmp_path: Path
) -> None:
    db = tmp_path / "xtracker.db"
    space = _seed(db)
    server = start_app("--report-wait-s", "0", "--report-cube", db=db)
    url = f"/admin/spaces/{space}/reports/funnel"
    with httpx.Client(base_url=server.url, timeout=HANG_S, verify=TLS_VERIFY) as http:
        r = http.get(url, headers=ADMIN)
        assert r.status_code == 503, r.text
        body = r.json()
        assert (body["error"], body["reason"]) == ("unavailable", "rebuilding")
        assert f"of {EVENTS:,} inbox rows" in body["detail"], body
        assert r.headers["Retry-After"] == "10"
        # nothing is wrong with the storage, and housekeeping goes on building it meanwhile, a
        # slice at a time
        assert http.get("/healthz").status_code == 200
        first = body["detail"]
        deadline = time.monotonic() + HANG_S
        while r.status_code == 503 and r.json()["detail"] == first:
            assert time.monotonic() < deadline, "the build did not go on"
            time.sleep(0.5)
            r = http.get(url, headers=ADMIN)
        assert r.status_code == 200 or r.json()["reason"] == "rebuilding", r.text
