"""The seeding of bench/growth.py: what it writes is what the server would have written (the
schema of a fresh database, rows that add up, a funnel report that counts them), so that the
growth benchmark measures a real database, and a server runs on it."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ServerFactory

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
    seeded: tuple[Path, object], start_server: ServerFactory, tmp_path: Path
) -> None:
    path, result = seeded
    server = start_server(db=_copy(path, tmp_path / "served.db"))
    with server.client() as http:
        answer = http.get(
            f"/admin/spaces/{result.space_id}/reports/funnel",  # type: ignore[attr-defined]
            params={"days": 31},
            headers={"Authorization": f"Bearer {result.bearer}"},  # type: ignore[attr-defined]
        )
    assert answer.status_code == 200, answer.text
    steps = {s["step"]: s["uids"] for s in answer.json()["steps"]}
    assert steps == {"click": result.rows["clicks"], **result.step_uids}  # type: ignore[attr-defined]
