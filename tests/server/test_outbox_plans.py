"""The plans of the outbox's queries (store/sqlite/outbox.py) on a database SQLite believes is large
(tests/plans.py: an outbox and inbox of 10 million rows in one space), with statistics and
without (a database never analysed): each reads a bounded number of rows in both, so the
worker's pace and the operator's counts do not depend on how much the outbox holds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plans import Planned, big_database, plans_of, whole_space_walks
from xtracker_server.domain.drain import claim_plan
from xtracker_server.store.sqlite import outbox

NOW = 10**12


@pytest.fixture(params=[True, False], ids=["analysed", "never-analysed"])
def big(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = big_database(tmp_path / "big.db", stats=request.param)
    yield conn
    conn.close()


def _lines(planned: list[Planned]) -> list[str]:
    return [line for p in planned for line in p.plan]


def test_the_context_read_looks_each_event_up_by_primary_key(big: sqlite3.Connection) -> None:
    claimed = [outbox.Claimed(i, 1, 1, 100 + i, f"xt_{i}", "deposit", 1, 0) for i in range(32)]
    planned = plans_of(big, lambda c: outbox.contexts(c, 1, claimed, "https://x.example"))
    assert len(planned) == 1
    assert planned[0].plan[0] == "SEARCH i USING INTEGER PRIMARY KEY (rowid=?)", planned[0]
    assert whole_space_walks(planned) == []


def test_a_claim_reads_the_front_of_one_destinations_due_rows(big: sqlite3.Connection) -> None:
    plan = claim_plan(32, NOW)

    def claim(c: sqlite3.Connection) -> list[outbox.Claimed]:
        return outbox.claim(
            c, 1, "me", NOW, 60_000, plan.limit,
            fresh_limit=plan.fresh_limit, fresh_since_ms=plan.fresh_since_ms,
        )  # fmt: skip

    planned = plans_of(big, claim)
    # the newest lane, then the backlog: each an ordered walk of the partial index of due
    # rows, cut short by its LIMIT (leased rows are skipped: at most what workers hold)
    assert [p.plan for p in planned] == [
        [
            "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)",
            "LIST SUBQUERY 1",
            "SEARCH deliveries USING INDEX deliveries_due"
            " (destination_id=? AND next_attempt_ms>? AND next_attempt_ms<?)",
        ],
        [
            "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)",
            "LIST SUBQUERY 1",
            "SEARCH deliveries USING INDEX deliveries_due (destination_id=? AND next_attempt_ms<?)",
        ],
    ], "\n".join(map(str, planned))
    assert all("ORDER BY" in p.sql and "LIMIT" in p.sql for p in planned)


def test_the_due_destinations_probe_each_destination_once(big: sqlite3.Connection) -> None:
    planned = plans_of(big, lambda c: outbox.due_destinations(c, NOW))
    assert _lines(planned) == [
        "SCAN t",  # destinations: a handful
        "CORRELATED SCALAR SUBQUERY 1",
        "SEARCH d USING INDEX deliveries_due (destination_id=? AND next_attempt_ms<?)",
    ], "\n".join(map(str, planned))
    assert "EXISTS" in planned[0].sql  # the probe stops at the first due row


def test_settling_a_batch_goes_by_primary_key(big: sqlite3.Connection) -> None:
    settled = [
        outbox.Settled(5, 1, "sent", None, 200, None, False, "sent", 3, '{"ok":true}'),
        outbox.Settled(6, 1, "retrying", NOW + 30_000, 503, "HTTP 503", False, "retry", 3, ""),
    ]
    unhealthy = [outbox.Unhealthy(1, 1, "the endpoint answered 410 Gone")]
    planned = plans_of(big, lambda c: outbox.settle(c, "me", settled, NOW, unhealthy))
    assert whole_space_walks(planned) == []
    for p in planned:
        assert any("PRIMARY KEY (rowid=?)" in line for line in p.plan), p
    assert {p.sql.split()[0] for p in planned} == {"UPDATE", "INSERT"}


def test_hastening_an_outage_s_retries_reads_only_one_destinations_later_rows(
    big: sqlite3.Connection,
) -> None:
    planned = plans_of(big, lambda c: outbox.hasten_retries(c, 1, NOW, 2000))
    # the partial index of due rows, from now on, for one destination, cut short by the LIMIT
    assert _lines(planned) == [
        "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)",
        "LIST SUBQUERY 1",
        "SEARCH deliveries USING INDEX deliveries_due (destination_id=? AND next_attempt_ms>?)",
    ], "\n".join(map(str, planned))


def test_releasing_every_lease_reads_only_the_leased_rows(big: sqlite3.Connection) -> None:
    planned = plans_of(big, outbox.release_leases)
    # a walk of the partial index deliveries_leased: it holds the leased rows alone
    assert _lines(planned) == [
        "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)",
        "LIST SUBQUERY 1",
        "SCAN deliveries USING INDEX deliveries_leased",
    ], "\n".join(map(str, planned))
    index = big.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'deliveries_leased'"
    ).fetchone()[0]
    assert index.endswith("WHERE lease_owner IS NOT NULL")


@pytest.mark.parametrize(
    "call",
    [outbox.depth, outbox.unsettled_count, lambda c: outbox.status_counts(c, 1)],
    ids=["depth", "unsettled_count", "status_counts"],
)
def test_the_counts_never_count_the_outbox(big: sqlite3.Connection, call: object) -> None:
    planned = plans_of(big, call)  # type: ignore[arg-type]
    assert planned
    for p in planned:
        assert "FROM delivery_counts" in p.sql, p
        assert not any("deliveries" in line for line in p.plan), p


def test_listing_a_spaces_deliveries_walks_each_status_only_to_the_limit(
    big: sqlite3.Connection,
) -> None:
    planned = plans_of(big, lambda c: outbox.list_deliveries(c, 1, limit=50))
    searches = [line for line in _lines(planned) if line.startswith(("SEARCH", "SCAN d"))]
    assert searches == [
        "SEARCH deliveries USING INDEX deliveries_space_status (space_id=? AND status=?)"
    ] * len(outbox.STATUSES), "\n".join(map(str, planned))
    # each status's walk is cut short by the limit, and so is their merge (which sorts the
    # few rows they found, not the outbox)
    assert planned[0].sql.count("ORDER BY id DESC LIMIT 50") == len(outbox.STATUSES) + 1
