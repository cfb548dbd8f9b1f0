"""Backup and restore end to end: a real server under a load of events, ``xtracker backup`` run
as a user runs it (a process of its own) while the load goes on, the real ``xtracker backup``
and ``xtracker restore`` commands (run in this process: their claim on the file is an
``flock`` of an open file, refused to another open file of the same process too), and the
reports compared with a count of the inbox made here with plain SQL (the oracle knows nothing
of the report rollup)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    AppServer,
    Server,
    ServerFactory,
    SpaceKeys,
    run_cli,
)
from tests.databases import migrated
from tests.inprocess import cli_in_process

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
STEPS = ("contact", "subscribed", "registration", "deposit")
HANG_S = 120.0  # only to catch a hang


def _event(prefix: str, n: int) -> dict[str, Any]:
    """Event ``n``: 97 uids, the four steps, a deposit of 1.25 USD; a unique eid."""
    body: dict[str, Any] = {
        "uid": f"{prefix}-u{n % 97}",
        "event": STEPS[n % 4],
        "eid": f"{prefix}{n}",
    }
    if body["event"] == "deposit":
        body["value"] = "1.25"
    return body


@dataclass
class Load:
    """Threads posting events until stopped; ``acked`` holds (time of the answer, eid)."""

    server: Server
    space: SpaceKeys
    prefix: str
    threads: int = 2
    acked: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._running = [
            threading.Thread(target=self._post, args=(k,)) for k in range(self.threads)
        ]
        for t in self._running:
            t.start()

    def _post(self, k: int) -> None:
        with self.server.client() as http:
            n = k
            while not self._stop.is_set():
                body = _event(self.prefix, n)
                r = http.post("/events", json=body, headers=self.space.auth)
                assert r.status_code == 200, r.text
                self.acked.append((time.monotonic(), body["eid"]))
                n += self.threads

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + HANG_S
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} events acknowledged"
            assert all(t.is_alive() for t in self._running), "a load thread failed"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for t in self._running:
            t.join(HANG_S)


def funnel(server: Server, space: SpaceKeys) -> dict[str, Any]:
    with server.client() as http:
        r = http.get(f"/admin/spaces/{space.id}/reports/funnel", headers=ADMIN)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def reported(data: dict[str, Any]) -> dict[str, Any]:
    """What the funnel ``data`` reports of the window's events. These tests send events with
    no click (uids made up): they are the funnel's ``without_click`` line, kept out of the
    steps (docs/reports.md)."""
    loose = data["without_click"]
    assert all(s["uids"] == 0 for s in data["steps"] if s["step"] != "click"), data
    steps = {s["step"]: loose[s["step"]] for s in data["steps"] if s["step"] != "click"}
    revenue = {c: Decimal(v) for c, v in loose["revenue"].items()}
    return {**steps, "deposits": loose["deposits"], "revenue": revenue}


def deposits(data: dict[str, Any]) -> int:
    """The deposits of the funnel ``data`` (all of them without a click: see ``reported``)."""
    return int(data["deposits"]) + int(data["without_click"]["deposits"])


def counted(db: Path, space: SpaceKeys, data: dict[str, Any]) -> dict[str, Any]:
    """What the funnel ``data`` must say, counted from the inbox of ``db`` in its window."""
    conn = sqlite3.connect(db)
    try:
        window = "space_id = ? AND uid IS NOT NULL AND occurred_at_ms >= ? AND occurred_at_ms < ?"
        args = (space.id, data["from_ms"], data["to_ms"])
        distinct = f"SELECT count(DISTINCT uid) FROM inbox WHERE {window} AND event = ?"
        steps = {step: conn.execute(distinct, (*args, step)).fetchone()[0] for step in STEPS}
        values = [Decimal(v) for (v,) in conn.execute(
            f"SELECT value FROM inbox WHERE {window} AND event = 'deposit'", args)]  # fmt: skip
    finally:
        conn.close()
    revenue = {"USD": sum(values, Decimal(0))} if values else {}
    return {**steps, "deposits": len(values), "revenue": revenue}


def eids(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {eid for (eid,) in conn.execute("SELECT eid FROM inbox")}
    finally:
        conn.close()


def post_events(server: Server, space: SpaceKeys, prefix: str, count: int) -> None:
    with server.client() as http:
        for n in range(count):
            r = http.post("/events", json=_event(prefix, n), headers=space.auth)
            assert r.status_code == 200, r.text


@dataclass
class BackedUp:
    server: Server
    space: SpaceKeys
    file: Path
    acked_before: set[str]  # acknowledged before `xtracker backup` started
    acked_during: int  # acknowledged while it ran
    ahead: dict[str, Any]  # the live server's funnel, past the backup, before the restore


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackedUp]:
    """A server under load, backed up in the middle of it; the load goes on past the backup,
    and a report brings the rollup up to the live inbox, past the backup's last event."""
    tmp = tmp_path_factory.mktemp("backup")
    server = AppServer(db=migrated(tmp / "xtracker.db"), extra_args=("--rate-limit", "0"))
    server.start()
    space = server.new_space("backed-up")
    load = Load(server, space, "live")
    load.start()
    try:
        # A few hundred events before the backup, a hundred past it: the backup (a process,
        # a second or more) runs under the load whatever the count (1500 and 300 proved no more).
        load.wait_for(400)
        acked_before = {eid for _, eid in list(load.acked)}
        started = time.monotonic()
        run_cli(server.db, "backup", str(tmp / "backup.db"))
        finished = time.monotonic()
        load.wait_for(len(load.acked) + 100)
    finally:
        load.stop()
    during = sum(1 for at, _ in load.acked if started < at < finished)
    yield BackedUp(server, space, tmp / "backup.db", acked_before, during, funnel(server, space))
    server.stop()


def test_a_backup_of_a_live_server_is_consistent(backed_up: BackedUp) -> None:
    assert backed_up.acked_during > 0, "the backup should have run under load"
    conn = sqlite3.connect(backed_up.file)
    assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    conn.close()
    assert stat.S_IMODE(os.stat(backed_up.file).st_mode) == 0o600
    missing = backed_up.acked_before - eids(backed_up.file)
    assert not missing, f"{len(missing)} events acknowledged before the backup are not in it"


def test_a_backup_does_not_replace_a_file_unless_forced(backed_up: BackedUp) -> None:
    before = backed_up.file.read_bytes()
    proc = cli_in_process(backed_up.server.db, "backup", str(backed_up.file), check=False)
    assert proc.returncode == 1
    assert "exists" in proc.stderr and "--force" in proc.stderr
    assert backed_up.file.read_bytes() == before


def test_restore_is_refused_while_the_server_runs(backed_up: BackedUp) -> None:
    db = backed_up.server.db
    before = eids(db)
    proc = cli_in_process(db, "restore", str(backed_up.file), check=False)
    assert proc.returncode == 1
    assert "in use by `xtracker serve`" in proc.stderr and "nothing was changed" in proc.stderr
    assert eids(db) == before


def test_restore_brings_the_reports_back_to_the_restored_inbox(backed_up: BackedUp) -> None:
    server, space = backed_up.server, backed_up.space
    in_backup = eids(backed_up.file)
    assert deposits(backed_up.ahead) > counted(backed_up.file, space, backed_up.ahead)["deposits"]

    server.stop()
    proc = cli_in_process(server.db, "restore", str(backed_up.file), "--json")
    assert json.loads(proc.stdout)["events"] == len(in_backup)
    server.start()
    assert eids(server.db) == in_backup
    data = funnel(server, space)
    assert reported(data) == counted(server.db, space, data)

    post_events(server, space, "after", 60)
    data = funnel(server, space)
    assert reported(data) == counted(server.db, space, data)
    assert len(eids(server.db)) == len(in_backup) + 60


def test_a_database_copied_over_by_hand_is_noticed_by_the_reports(
    start_app: ServerFactory, tmp_path: Path
) -> None:
    server = start_app("--rate-limit", "0")
    space = server.new_space("copied")
    post_events(server, space, "old", 200)
    live, copy = sqlite3.connect(server.db), sqlite3.connect(tmp_path / "copy.db")
    live.backup(copy)  # the backup these docs used to give (python3 -c "…backup(…)")
    live.close()
    copy.close()
    post_events(server, space, "lost", 120)
    assert deposits(funnel(server, space)) == 80  # the rollup is past the copy

    server.stop()
    shutil.copyfile(tmp_path / "copy.db", server.db)  # the restore these docs used to give
    for side in ("-wal", "-shm"):
        Path(str(server.db) + side).unlink(missing_ok=True)
    server.start()
    data = funnel(server, space)
    assert reported(data) == counted(server.db, space, data)
    assert deposits(data) == 50

    post_events(server, space, "after", 40)
    data = funnel(server, space)
    assert reported(data) == counted(server.db, space, data)
    assert deposits(data) == 60


def test_a_killed_server_does_not_keep_the_database_claimed(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = start_server()
    space = server.new_space("killed")
    post_events(server, space, "kept", 10)
    cli_in_process(server.db, "backup", str(tmp_path / "b.db"))
    assert server.proc is not None
    pid = server.proc.pid
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    server.kill()
    for child in children:  # the writer process ends when the server's pipe closes
        deadline = time.monotonic() + HANG_S
        while Path(f"/proc/{child}").exists() and _alive(child):
            assert time.monotonic() < deadline, "the writer process outlived the server"
            time.sleep(0.05)
    proc = cli_in_process(server.db, "restore", str(tmp_path / "b.db"), "--json")
    assert json.loads(proc.stdout)["events"] == 10


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has closed its files
