"""The seeding of bench/growth.py: what it writes is what the server would have written (the
schema of a fresh database, rows that add up, a funnel report that counts them), so that the
growth benchmark measures a real database, and a server runs on it."""

from __future__ import annotations

import importlib
import importlib.util
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ServerFactory
from xtracker_server.domain.retry import RetryPolicy

BENCH = Path(__file__).resolve().parents[2] / "bench"
EVENTS = 3_000


def _load_seeding() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_growth_seed", BENCH / "_growth_seed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


seeding = _load_seeding()


def _copy(path: Path, to: Path) -> Path:
    """A copy of the seeded database (the module's tests share the original)."""
    source, target = sqlite3.connect(path), sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return to


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("growth") / "x.db"
    return path, seeding.seed(path, events=EVENTS)


def test_seed_writes_the_events_and_clicks_asked_for(seeded: tuple[Path, object]) -> None:
    path, result = seeded
    rows = result.rows  # type: ignore[attr-defined]
    assert rows["inbox"] == EVENTS
    assert rows["clicks"] == EVENTS * 6 // 10
    assert rows["deliveries"] == EVENTS  # the webhook takes every event
    assert EVENTS < rows["attempts"] < EVENTS * 1.05  # about 1 % needed a second attempt
    assert 0.6 < rows["binds"] / rows["clicks"] < 0.9
    assert rows["postback_log"] > EVENTS / 10
    conn = sqlite3.connect(path)
    try:
        uids = [r[0] for r in conn.execute("SELECT uid FROM clicks LIMIT 100")]
        sources = dict(conn.execute("SELECT source, count(*) FROM inbox GROUP BY source"))
        outcomes = dict(conn.execute("SELECT outcome, count(*) FROM postback_log GROUP BY outcome"))
    finally:
        conn.close()
    assert all(len(uid) == 16 for uid in uids) and len(set(uids)) == 100  # the server's uids
    assert set(sources) == {"api", "postback"}
    assert set(outcomes) == {"queued", "duplicate"}


def test_seeded_database_passes_the_check(seeded: tuple[Path, object]) -> None:
    path, result = seeded
    assert seeding.check(path, result, thorough=True) == []


def test_check_finds_a_row_the_seed_did_not_write(
    seeded: tuple[Path, object], tmp_path: Path
) -> None:
    path, result = seeded
    copy = _copy(path, tmp_path / "copy.db")
    conn = sqlite3.connect(copy)
    conn.execute("DELETE FROM delivery_attempts WHERE id = 1")
    conn.commit()
    conn.close()
    problems = seeding.check(copy, result)
    assert len(problems) == 1 and "rows per table" in problems[0]


def test_server_reports_the_seeded_funnel(
    seeded: tuple[Path, object], start_app: ServerFactory, tmp_path: Path
) -> None:
    # The real app on the seeded file, started as `serve` starts it (the database's check and
    # migrations first); in this process: a `serve` process would add nothing to the report.
    path, result = seeded
    server = start_app(db=_copy(path, tmp_path / "served.db"))
    with server.client() as http:
        answer = http.get(
            f"/admin/spaces/{result.space_id}/reports/funnel",  # type: ignore[attr-defined]
            params={"days": 31},
            headers={"Authorization": f"Bearer {result.bearer}"},  # type: ignore[attr-defined]
        )
    assert answer.status_code == 200, answer.text
    steps = {s["step"]: s["uids"] for s in answer.json()["steps"]}
    assert steps == {"click": result.rows["clicks"], **result.step_uids}  # type: ignore[attr-defined]


def test_each_seeded_delivery_is_left_as_its_attempts_leave_it(
    seeded: tuple[Path, object],
) -> None:
    """As the worker's settle leaves a delivery: sent at its last attempt (200), after a 503 a
    retry policy's delay later (about 1 %), its attempts counted, no lease."""
    path, _ = seeded
    conn = sqlite3.connect(path)
    try:
        deliveries = conn.execute(
            "SELECT id, attempts, next_attempt_ms, created_ms, age_from_ms, updated_ms, sent_ms,"
            " last_status, last_error, lease_owner, lease_until_ms FROM deliveries"
        ).fetchall()
        attempts: dict[int, list[tuple[int, int, str, str | None]]] = {}
        for delivery_id, *attempt in conn.execute(
            "SELECT delivery_id, at_ms, status_code, outcome, error FROM delivery_attempts"
            " ORDER BY id"
        ):
            attempts.setdefault(delivery_id, []).append(tuple(attempt))
    finally:
        conn.close()
    base_ms = RetryPolicy().base_s * 1000
    retried = 0
    for (
        id_,
        tries,
        next_ms,
        created,
        age_from,
        updated,
        sent,
        status,
        error,
        owner,
        lease,
    ) in deliveries:
        made = attempts[id_]
        assert tries == len(made) and age_from == created
        assert (status, error, owner, lease) == (200, None, None, None)
        assert sent == updated == made[-1][0] and made[-1][1:] == (200, "sent", None)
        assert created < made[0][0]
        if tries == 1:
            assert next_ms == created
        else:
            retried += 1
            assert tries == 2 and made[0][1:] == (503, "retry", "HTTP 503")
            assert made[0][0] + 0.8 * base_ms <= next_ms <= made[0][0] + 1.2 * base_ms
            assert next_ms < made[1][0]
    assert 0 < retried < len(deliveries) * 0.05


def _load_growth(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # its sibling modules (_harness, clicks, ...)
    return importlib.import_module("growth")


def test_both_databases_end_at_the_instant_of_a_kept_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept large seed sets the instant; a kept small one that ends at another instant is
    seeded again, to end then too (the last 7 days, retention and the report's window then
    cover the same part of both)."""
    growth = _load_growth(monkeypatch)
    keep, work = tmp_path / "keep", tmp_path / "work"
    work.mkdir()
    args = growth.parse_args(["--small", "1000", "--large", "2000", "--keep", str(keep)])
    end_ms = 1_750_000_000_000
    for events, end in ((2000, end_ms), (1000, end_ms - 3_600_000)):
        kept = growth.kept_seed(args, events)
        kept.parent.mkdir(exist_ok=True)
        seeding.seed(kept, events=events, end_ms=end).save(kept.with_suffix(".json"))
    assert growth.common_end_ms(args) == end_ms
    _, small, small_result = growth.seeded_database("small", 1000, args, work, end_ms)
    _, large, large_result = growth.seeded_database("large", 2000, args, work, end_ms)
    assert small.to_ms == large.to_ms == end_ms
    assert small_result.seed_s is not None  # seeded again
    assert large_result.seed_s is None  # reused
    kept_small = growth.kept_seed(args, 1000).with_suffix(".json")
    assert seeding.Seeded.load(kept_small).to_ms == end_ms
