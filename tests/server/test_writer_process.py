"""The writer process (store/sqlite/writer_process.py) on real SQLite files: batches, errors that
stay with their operation, a commit that fails, a writer that dies, and a server that dies."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import ServerFactory
from tests.server import writer_ops as ops
from xtracker_server.store.sqlite import writer_child
from xtracker_server.store.sqlite.db import open_db
from xtracker_server.store.sqlite.writer import StoreUnavailable
from xtracker_server.store.sqlite.writer_process import ProcessWriter


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def new_db(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    open_db(str(path)).close()
    return path


def test_concurrent_writes_are_committed_in_few_batches(tmp_path: Path) -> None:
    path = new_db(tmp_path)

    async def run() -> tuple[list[int], int]:
        writer = ProcessWriter(str(path), operations=ops.WRITER_OPS)
        await writer.start()
        await writer.write(ops.make_table)
        results = await asyncio.gather(*(writer.write(ops.insert, n) for n in range(1, 301)))
        batches = writer.batches
        await writer.stop()
        return results, batches

    results, batches = asyncio.run(run())
    assert results == [n * 10 for n in range(1, 301)]
    assert batches < 100  # 300 writes submitted together go in far fewer batches
    assert rows(path, "SELECT count(*), min(n), max(n) FROM t") == [(300, 1, 300)]


def test_an_operation_that_raises_fails_alone(tmp_path: Path) -> None:
    path = new_db(tmp_path)

    async def run() -> list[object]:
        writer = ProcessWriter(str(path), operations=ops.WRITER_OPS)
        await writer.start()
        await writer.write(ops.make_table)
        out = await asyncio.gather(
            writer.write(ops.insert, 1),
            writer.write(ops.insert_then_fail, 2),
            writer.write(ops.insert, 3),
            return_exceptions=True,
        )
        await writer.stop()
        return list(out)

    first, failed, third = asyncio.run(run())
    assert (first, third) == (10, 30)
    assert isinstance(failed, ValueError) and str(failed) == "refused 2"
    assert rows(path, "SELECT n FROM t ORDER BY n") == [(1,), (3,)]


def test_grouped_calls_share_one_call_and_a_bad_one_fails_alone(tmp_path: Path) -> None:
    path = new_db(tmp_path)
    names = [f"name{i}" for i in range(40)]

    async def run() -> tuple[list[object], list[object]]:
        writer = ProcessWriter(str(path), operations=ops.WRITER_OPS)
        await writer.start()
        await writer.write(ops.make_table)
        good = await asyncio.gather(*(writer.write_grouped(ops.add_names, n) for n in names))
        mixed = await asyncio.gather(
            *(writer.write_grouped(ops.add_names, n) for n in ("a", "bad", "b")),
            return_exceptions=True,
        )
        await writer.stop()
        return list(good), list(mixed)

    good, mixed = asyncio.run(run())
    assert good == [n.upper() for n in names]
    assert mixed[0] == "A" and mixed[2] == "B" and isinstance(mixed[1], ValueError)
    stored = {str(r[0]) for r in rows(path, "SELECT name FROM t")}
    assert stored == {*names, "a", "b"}
    # The 40 went as one call (plus the calls of the mixed group, run again one by one).
    assert (40,) in rows(path, "SELECT size FROM group_calls")


def test_what_cannot_travel_fails_for_its_caller_only(tmp_path: Path) -> None:
    path = new_db(tmp_path)

    async def run() -> tuple[BaseException | None, list[object]]:
        writer = ProcessWriter(str(path), operations=ops.WRITER_OPS)
        await writer.start()
        await writer.write(ops.make_table)
        refused = None
        try:
            await writer.write(lambda conn: 1)  # a lambda cannot be pickled
        except Exception as exc:
            refused = exc
        back = await asyncio.gather(
            writer.write(ops.raise_awkward),
            writer.write(ops.insert, 7),
            writer.write(ops.insert_returning_a_generator, 8),
            return_exceptions=True,
        )
        await writer.stop()
        return refused, list(back)

    refused, (awkward, inserted, generator) = asyncio.run(run())
    assert refused is not None and "lambda" in str(refused)
    assert isinstance(awkward, RuntimeError) and "could not be sent back" in str(awkward)
    assert "Awkward: x/y" in str(awkward) and "committed" not in str(awkward)
    assert inserted == 70
    # Committed, but the caller is told its result could not come back.
    assert isinstance(generator, RuntimeError) and "could not be sent back" in str(generator)
    assert rows(path, "SELECT n FROM t ORDER BY n") == [(7,), (8,)]


def test_a_failed_commit_acknowledges_nobody_in_its_batch(tmp_path: Path) -> None:
    path = new_db(tmp_path)

    async def run() -> tuple[list[object], int]:
        writer = ProcessWriter(str(path), operations=ops.WRITER_OPS)
        await writer.start()
        await writer.write(ops.make_table)
        out = await asyncio.gather(
            writer.write(ops.insert, 1),
            writer.write(ops.break_the_commit),
            writer.write(ops.insert, 2),
            return_exceptions=True,
        )
        after = await writer.write(ops.insert, 3)  # the writer carries on
        await writer.stop()
        return list(out), after

    out, after = asyncio.run(run())
    assert all(isinstance(o, StoreUnavailable) for o in out), out
    assert "could not commit" in str(out[0])
    assert after == 30
    assert rows(path, "SELECT n FROM t") == [(3,)]


def test_a_dead_writer_process_fails_its_callers_and_is_replaced(tmp_path: Path) -> None:
    path = new_db(tmp_path)

    async def run() -> tuple[BaseException | None, BaseException | None, bool, int, int]:
        writer = ProcessWriter(str(path), operations=ops.WRITER_OPS)
        await writer.start()
        await writer.write(ops.make_table)
        assert writer.running
        waiting = asyncio.ensure_future(writer.write(ops.slow, 5.0))
        await asyncio.sleep(0.3)  # the slow batch is in the writer
        assert writer._proc is not None
        os.kill(writer._proc.pid, signal.SIGKILL)
        in_flight = None
        try:
            await asyncio.wait_for(waiting, 5)
        except StoreUnavailable as exc:
            in_flight = exc
        later = None
        try:  # refused until a new writer process runs (after RESPAWN_DELAY_S)
            await writer.write(ops.insert, 1)
        except StoreUnavailable as exc:
            later = exc
        running_after_death = writer.running
        assert writer._respawning is not None
        await writer._respawning  # the replacement, started by the writer itself
        value = await writer.write(ops.insert, 2)
        restarts = writer.restarts
        await writer.stop()
        return in_flight, later, running_after_death, value, restarts

    in_flight, later, running_after_death, value, restarts = asyncio.run(run())
    assert in_flight is not None and "exited" in str(in_flight)
    assert later is not None and not running_after_death
    assert (value, restarts) == (20, 1)
    assert rows(path, "SELECT n FROM t") == [(2,)]


def test_stop_finishes_what_was_submitted(tmp_path: Path) -> None:
    path = new_db(tmp_path)

    async def run() -> list[int]:
        writer = ProcessWriter(str(path), operations=ops.WRITER_OPS)
        await writer.start()
        await writer.write(ops.make_table)
        futures = [asyncio.ensure_future(writer.write(ops.insert, n)) for n in range(1, 51)]
        await asyncio.sleep(0)  # submitted, not answered
        await writer.stop()
        return [f.result() for f in futures]

    assert asyncio.run(run()) == [n * 10 for n in range(1, 51)]
    assert rows(path, "SELECT count(*) FROM t") == [(50,)]


def test_a_database_it_cannot_open_fails_the_start(tmp_path: Path) -> None:
    async def run() -> None:
        await ProcessWriter(str(tmp_path)).start()  # a directory, not a database file

    with pytest.raises(RuntimeError, match=r"unable to open|is a directory"):
        asyncio.run(run())


WRITER_CHILD = writer_child.__name__.encode()


def _children(pid: int, module: bytes = WRITER_CHILD) -> list[int]:
    """The writer processes (or those running ``module``) among the children of ``pid`` (a
    server's other children are its delivery worker, tests/e2e/test_worker_process.py, and its
    report rollup's process, tests/server/test_rollup_process.py)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and module in argv:
                found.append(int(entry))
    return found


def test_a_server_whose_writer_dies_gets_a_new_one(start_app: ServerFactory) -> None:
    # The app in this process with its writer in a process (as `serve` runs it): the writer
    # is the one writer child of this process (the tests above stopped theirs).
    server = start_app(XTRACKER_WRITER_PROCESS="on")
    (writer_pid,) = _children(os.getpid())
    space = server.new_space()
    answers = []
    with server.client() as http:
        assert http.get("/healthz").json()["writer"] == "running"
        os.kill(writer_pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = http.post(
                "/events", json={"uid": "u", "event": "contact", "eid": "e1"}, headers=space.auth
            )
            answers.append(r.status_code)
            if r.status_code == 200:
                break
            # Until the new writer runs: a clear 503, never a lost acknowledgement.
            assert r.status_code == 503 and r.json()["error"], r.text
            time.sleep(0.05)
        assert answers[-1] == 200, answers
        assert http.get("/healthz").json()["writer"] == "running"
    (new_pid,) = _children(os.getpid())
    assert new_pid != writer_pid and not _alive(writer_pid)
    assert "a new writer process runs" in server.log_text()
    server.stop()
    assert not _alive(new_pid)  # a server that stops takes its writer with it


def test_a_killed_server_leaves_no_writer_process(start_server: ServerFactory) -> None:
    # No delivery worker: its process is not the subject (tests/e2e/test_worker_process.py
    # kills a server that has one), and its start costs about as much as the writer's.
    srv = start_server("--no-worker")
    assert srv.proc is not None
    (writer_pid,) = _children(srv.proc.pid)
    with srv.client() as http:
        assert http.get("/healthz").status_code == 200
    srv.proc.kill()
    srv.proc.wait(timeout=15)
    deadline = time.monotonic() + 10
    while _alive(writer_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(writer_pid)


def _alive(pid: int) -> bool:
    """Running (an exited process waiting to be reaped by init is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("in_process", [True, False], ids=["writer-process", "writer-thread"])
def test_the_store_writes_through_either_writer(tmp_path: Path, in_process: bool) -> None:
    from xtracker_server.store.sqlite.runtime import Store
    from xtracker_server.store.sqlite.writer import GroupCommitWriter

    path = tmp_path / "s.db"

    async def run() -> tuple[object, list[str], int, type]:
        store = Store(str(path), writer_process=in_process, operations=ops.WRITER_OPS)
        await store.open()
        try:
            await store.write(ops.make_table)
            n = await store.write(ops.insert, 4)
            names = await asyncio.gather(*(store.write_grouped(ops.add_names, x) for x in "ab"))
            count = await store.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone())
            return n, list(names), count[0], type(store.writer)
        finally:
            await store.close()

    n, names, count, kind = asyncio.run(run())
    assert (n, names, count) == (40, ["A", "B"], 3)
    assert kind is (ProcessWriter if in_process else GroupCommitWriter)


def test_serve_with_no_writer_process_commits_in_a_thread(start_app: ServerFactory) -> None:
    """The app ``serve --no-writer-process`` runs (its settings from the flag, which wins over
    the variable as in ``serve``), in this process: no writer child of this one."""
    srv = start_app("--no-writer-process", XTRACKER_WRITER_PROCESS="on")
    space = srv.new_space()
    with srv.client() as http:
        r = http.post("/events", json={"uid": "u", "event": "contact"}, headers=space.auth)
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text
        assert http.get("/healthz").json()["writer"] == "running"
    assert _children(os.getpid()) == []  # no writer process: the server's own thread wrote
