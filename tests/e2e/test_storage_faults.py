"""Storage faults made for real (as root): a full tmpfs, an ext4 image gone read-only, a held
write lock, an ext4 image frozen with fsfreeze, a read-only or damaged file at start.

Every storage error answers 503 with Retry-After and a reason, never 500; /healthz says so
(/livez does not: it never touches storage); a request waits at most XTRACKER_WRITE_TIMEOUT_S;
a retried event is a duplicate exactly when the first try was stored; each change of the
storage's state is logged once. A file system is always thawed and unmounted in ``finally``:
a frozen one left behind would hang the machine's next test.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, AppServer, Server, SpaceKeys, free_port
from tests.inprocess import cli_in_process

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="storage faults are made as root (mount, fsfreeze)"
)

PHONE = {"User-Agent": "Mozilla/5.0 (Linux; Android 13) Chrome/120 Mobile Safari/537.36"}
DEADLINE_S = 2.0  # --write-timeout-s of the servers here


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    sh("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=60)


@contextmanager
def ext4(tmp: Path, *options: str) -> Iterator[Path]:
    """A 32 MiB ext4 file system in an image file, loop-mounted (with ``options``)."""
    image, where = tmp / "disk.img", tmp / "mnt"
    where.mkdir()
    sh("truncate", "-s", "32M", str(image))
    sh("mkfs.ext4", "-q", "-F", str(image))
    sh("mount", "-o", ",".join(("loop", *options)), str(image), str(where))
    try:
        yield where
    finally:
        # Thaw first, whatever happened: unmounting a frozen file system hangs.
        subprocess.run(["fsfreeze", "-u", str(where)], capture_output=True, timeout=60)
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=60)


@contextmanager
def running(db: Path, log: Path, *args: str, process: bool = False) -> Iterator[Server]:
    """A server on ``db``, its log kept off the faulty file system: the app in this process
    with its writer in a process of its own (as ``serve`` runs it: the writer meets the
    fault), or with ``process`` a real ``xtracker serve``, for a fault that could leave the
    server stuck (a frozen disk): that one is killed, whatever happens."""
    server: Server
    if process:
        server = Server(db=db, port=free_port(), extra_args=args, log=log)
    else:
        server = AppServer(db=db, extra_args=args, log=log, env={"XTRACKER_WRITER_PROCESS": "on"})
    server.start()
    try:
        yield server
    finally:
        if process:
            server.kill()  # SIGKILL: a server stuck on a broken disk must not hold the test
        else:
            server.stop()


def fast_server_args() -> tuple[str, ...]:
    return ("--write-timeout-s", str(DEADLINE_S), "--rate-limit", "0", "--no-worker")


def post_event(http: httpx.Client, space: SpaceKeys, eid: str) -> httpx.Response:
    body = {"uid": "u1", "event": "deposit", "value": "10.00", "eid": eid}
    return http.post("/events", json=body, headers=space.auth)


def assert_unavailable(r: httpx.Response, reason: str) -> None:
    assert r.status_code == 503, r.text
    body = r.json()
    assert (body["ok"], body["error"], body["reason"]) == (False, "unavailable", reason), body
    assert int(r.headers["Retry-After"]) > 0


def wait_for(check: Callable[[], Any], timeout: float) -> Any:
    """Poll ``check`` until it returns something true (the server's state changes in another
    process: there is nothing to await). ``timeout`` only catches a hang."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def healthz(http: httpx.Client) -> tuple[int, str | None]:
    r = http.get("/healthz")
    return r.status_code, r.json().get("reason")


def stored_eids(db: Path, space: SpaceKeys) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT eid FROM inbox WHERE space_id = ?", (space.id,)).fetchall()
    finally:
        conn.close()
    return [eid for (eid,) in rows]


def fill(directory: Path) -> Path:
    """Write a file until the file system is full (again, if it was: what the server's own
    files gave back since is taken too)."""
    filler = directory / "filler"
    # Unbuffered: a buffer would keep what did not fit, and closing would fail to write it.
    with filler.open("ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def state_changes(server: Server, since: int) -> list[str]:
    """What the log says about the writes' storage state after its first ``since`` characters
    (a loaded machine may stall a write past the deadline before the fault is made)."""
    # An in-process app's log line starts with its record's level and logger (tests/inprocess.py).
    lines = [re.sub(r"^[A-Z]+ xtracker[\w.]*: ", "", line)
             for line in server.log_text()[since:].splitlines()]  # fmt: skip
    return [
        line.split(": ")[0] + ": " + line.split(": ")[1].split()[0]
        for line in lines
        if line.startswith("storage ") and "(writes)" in line
    ]


def test_a_full_disk_answers_503_disk_full_and_recovers_when_space_is_freed(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "8m") as disk:
        db = disk / "xtracker.db"
        with running(db, tmp_path / "server.log", *fast_server_args()) as server:
            space = server.new_space("full")
            server.cli("link", "create", "--space", str(space.id), "--slug", "ad",
                       "--kind", "bot", "--target", "offer_bot")  # fmt: skip
            with server.client() as http:
                assert post_event(http, space, "before").json()["status"] == "queued"
                since = len(server.log_text())
                filler = fill(disk)
                # full again for each write: space the server's own files give back meanwhile
                # (a journal or WAL truncated after a failed commit) let one write through
                answers = []
                for i in range(40):
                    fill(disk)
                    answers.append(post_event(http, space, f"full-{i}"))
                refused = [i for i, r in enumerate(answers) if r.status_code != 200]
                assert refused, "a full disk must refuse some write"
                assert all(r.status_code in (200, 503) for r in answers), [
                    r.text for r in answers if r.status_code not in (200, 503)
                ]
                assert_unavailable(answers[refused[-1]], "disk_full")
                assert http.get("/r/ad", headers=PHONE).status_code != 500
                assert healthz(http) == (503, "disk_full")
                assert http.get("/healthz").headers["Retry-After"]
                assert http.get("/livez").status_code == 200

                filler.unlink()
                retried = post_event(http, space, f"full-{refused[-1]}")
                assert retried.json()["status"] == "queued"  # nothing of it had been stored
                assert healthz(http) == (200, None)
            # 40 refused writes and more refused probes: one line when it started, one when it
            # ended; a pair more only when a write (a request's or a probe's) did commit
            # meanwhile, in space the server's own files gave back between the fill and the
            # commit (the report rollup's, failing beside it); never a line per refused write.
            changes = state_changes(server, since)
            pair = ["storage failing (writes): disk_full", "storage recovered (writes): disk_full"]
            assert changes == pair * (len(changes) // 2), server.log_text()
            assert 1 <= len(changes) // 2 <= 3 < len(refused), (refused, server.log_text())
            assert "Traceback" not in server.log_text()


def test_a_file_system_gone_read_only_is_noticed_by_an_idle_server(tmp_path: Path) -> None:
    """ext4 remounts itself read-only after an error (errors=remount-ro): what a failing disk
    does. (A tmpfs cannot be remounted read-only while a server holds its file open.)"""
    with ext4(tmp_path, "errors=remount-ro") as disk:
        db = disk / "xtracker.db"
        with running(db, tmp_path / "server.log", *fast_server_args()) as server:
            space = server.new_space("ro")
            with server.client() as http:
                assert post_event(http, space, "before").json()["status"] == "queued"
                assert healthz(http) == (200, None)
                since = len(server.log_text())
                device = Path(os.path.realpath(_device_of(disk))).name
                Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("xtracker test\n")

                # No request writes: the idle server's probe finds out.
                seen = wait_for(lambda: healthz(http) == (503, "read_only"), timeout=30)
                assert seen, healthz(http)
                assert http.get("/livez").status_code == 200
                for i in range(5):
                    assert_unavailable(post_event(http, space, f"ro-{i}"), "read_only")
            # Said once (after a timeout, if a loaded machine stalled a write first), though
            # every request and probe since failed.
            changes = state_changes(server, since)
            assert changes[-1].endswith(": read_only") and len(changes) <= 2, changes


def _device_of(mount_point: Path) -> str:
    for line in Path("/proc/mounts").read_text().splitlines():
        device, where, *_ = line.split()
        if where == str(mount_point):
            return device
    raise AssertionError(f"{mount_point} is not mounted")


def test_a_held_write_lock_answers_503_timeout_within_the_deadline(tmp_path: Path) -> None:
    db = tmp_path / "xtracker.db"
    with running(db, tmp_path / "server.log", *fast_server_args()) as server:
        space = server.new_space("locked")
        with server.client() as http:
            assert post_event(http, space, "before").json()["status"] == "queued"
            since = len(server.log_text())
            blocker = sqlite3.connect(db, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # another process's long write transaction
            try:
                answers: dict[str, httpx.Response] = {}
                started = time.monotonic()

                def post(eid: str) -> None:
                    with server.client() as own:
                        answers[eid] = post_event(own, space, eid)

                threads = [threading.Thread(target=post, args=(f"held-{i}",)) for i in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=60)
                waited = time.monotonic() - started
                # Answered while the lock is still held: nobody waited for it to be released.
                for r in answers.values():
                    assert_unavailable(r, "timeout")
                assert len(answers) == 4 and waited < 10 * DEADLINE_S
                assert healthz(http) == (503, "timeout")
                assert http.get("/livez").status_code == 200
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert wait_for(lambda: healthz(http) == (200, None), timeout=30)
            # The writer takes writes in the order they came: once this one is acknowledged,
            # each write that timed out has committed or was dropped, and ``landed`` is final.
            assert post_event(http, space, "after").json()["status"] == "queued"
            landed = stored_eids(db, space)
            for eid in answers:
                retried = post_event(http, space, eid).json()
                # A duplicate exactly when the write that timed out committed after all.
                assert retried["status"] == ("duplicate" if eid in landed else "queued"), eid
        assert sorted(stored_eids(db, space)) == sorted(["before", "after", *answers])  # once
    assert state_changes(server, since) == [
        "storage failing (writes): timeout",
        "storage recovered (writes): timeout",
    ], server.log_text()


def test_a_frozen_disk_answers_503_within_the_deadline_not_at_the_thaw(tmp_path: Path) -> None:
    with ext4(tmp_path) as disk:
        db = disk / "xtracker.db"
        with running(db, tmp_path / "server.log", *fast_server_args(), process=True) as server:
            space = server.new_space("frozen")
            with server.client() as http:
                assert post_event(http, space, "before").json()["status"] == "queued"
                sh("fsfreeze", "-f", str(disk))
                try:
                    started = time.monotonic()
                    frozen = [post_event(http, space, f"frozen-{i}") for i in range(3)]
                    waited = time.monotonic() - started
                    for r in frozen:
                        assert_unavailable(r, "timeout")
                    assert waited < 3 * 10 * DEADLINE_S  # the disk is still frozen
                    assert healthz(http) == (503, "timeout")
                    assert http.get("/livez").status_code == 200
                finally:
                    sh("fsfreeze", "-u", str(disk))
                assert wait_for(lambda: healthz(http) == (200, None), timeout=30)
                landed = stored_eids(db, space)
                for i in range(3):
                    eid = f"frozen-{i}"
                    retried = post_event(http, space, eid).json()
                    assert retried["status"] == ("duplicate" if eid in landed else "queued")
                assert sorted(stored_eids(db, space)) == sorted(
                    ["before", *(f"frozen-{i}" for i in range(3))]
                )


def serve_once(db: Path, command: str = "serve") -> subprocess.CompletedProcess[str]:
    """``xtracker serve`` (or ``worker``) as an operator starts it; it must exit by itself."""
    args = [sys.executable, "-m", "xtracker_server", command, "--db", str(db)]
    if command == "serve":
        args += ["--port", str(free_port())]
    env = {**os.environ, "XTRACKER_ADMIN_TOKEN": ADMIN_TOKEN}
    env.pop("XTRACKER_DB", None)
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


def test_a_database_that_cannot_be_written_stops_serve_and_worker_at_start(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "8m") as disk:
        db = disk / "xtracker.db"
        cli_in_process(db, "space", "create", "before")
        sh("mount", "-o", "remount,ro", str(disk))  # root ignores chmod: the mount is read-only
        for command in ("serve", "worker"):
            done = serve_once(db, command)
            assert done.returncode == 1, done.stdout + done.stderr
            assert f"cannot write to the database {db}" in done.stderr, done.stderr
            assert "read-only" in done.stderr


def test_a_damaged_database_is_refused_at_start_with_the_commands_that_repair_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "xtracker.db"
    # The app in this process fills the file (what is refused is the later `serve`'s start).
    server = AppServer(db=db, extra_args=("--rate-limit", "0", "--no-worker"))
    server.start()
    try:
        space = server.new_space("damaged")
        with server.client() as http:
            for i in range(300):
                assert post_event(http, space, f"e{i}").status_code == 200
    finally:
        server.stop()  # a clean stop: the WAL is checkpointed into the file
    conn = sqlite3.connect(db)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'inbox'").fetchone()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with db.open("r+b") as f:  # the inbox's first page: its header and cell pointers
        f.seek((root - 1) * page_size)
        f.write(b"\x0d\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")

    done = serve_once(db)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"the database {db} is damaged" in done.stderr, done.stderr
    assert f"xtracker restore BACKUP_FILE --db {db}" in done.stderr
    assert f"sqlite3 {db} .recover | sqlite3 {db}.recovered" in done.stderr
