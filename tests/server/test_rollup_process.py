"""The report rollup's catch-up in a process of its own (store/sqlite/rollup_process.py), on
real SQLite files: the same reports as on a thread, at a lower priority, a storage fault and a
build still under way travel back as the store's errors, a process that died is replaced, and
it ends with the store or with a killed server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN, ServerFactory
from tests.e2e.test_storage_faults import fill, tmpfs
from tests.server.test_report_cube_setting import (
    BY_CAMPAIGN,
    EVENTS,
    T0,
    WINDOW,
    H,
    _key,
    _run,
    _seed,
)
from tests.server.test_writer_process import _alive, _children
from tests.store_contract.conftest import event
from xtracker_server.domain.reports import FunnelMode
from xtracker_server.store.api import open_store
from xtracker_server.store.errors import FaultReason, StoreUnavailable
from xtracker_server.store.sqlite import rollup_process
from xtracker_server.store.sqlite.db import reports_path
from xtracker_server.store.sqlite.rollup_process import RollupProcess

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHILD = rollup_process.__name__.encode()
#: Bounds only to catch a hang: a child starts and answers in well under a second.
HANG_S = 30.0


def _rollup_children(pid: int) -> list[int]:
    """The rollup processes among the children of ``pid``."""
    return _children(pid, CHILD)


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + HANG_S
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("cube", [True, False], ids=["cube", "steps"])
def test_a_process_of_its_own_reports_what_a_thread_does(tmp_path: Path, cube: bool) -> None:
    """The same grouped report and funnel, caught up in the child (lower priority, holding the
    database's use lock) or on the store's thread; closing the store ends the child."""
    path = str(tmp_path / "x.db")
    space = _run(_seed(path))

    async def report(in_process: bool) -> tuple[object, ...]:
        store = open_store(path, writer_process=False, report_cube=cube,
                           rollup_process=in_process)  # fmt: skip
        await store.open()
        try:
            fed = await store.catch_up_reports()
            children = _rollup_children(os.getpid())
            nice = [os.getpriority(os.PRIO_PROCESS, pid) for pid in children]
            groups = sorted(await store.group_counts(space, BY_CAMPAIGN), key=_key)
            funnel = await store.funnel_counts(space, WINDOW, mode=FunnelMode.COHORT)
            return fed, children, nice, groups, funnel
        finally:
            await store.close()

    fed, children, nice, groups, funnel = _run(report(True))
    assert fed == EVENTS
    (child,) = children
    assert nice == [os.getpriority(os.PRIO_PROCESS, 0) + rollup_process.NICE]
    assert _gone(child)  # the store closed: the child exited
    os.remove(reports_path(path))  # built again, on the thread this time
    thread = _run(report(False))
    assert thread[1] == []  # no child: the store's own thread caught up
    assert (thread[0], thread[3], thread[4]) == (fed, groups, funnel)
    assert funnel.clicks == 4


def test_a_build_under_way_comes_back_as_rebuilding(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    _run(_seed(path))

    async def go() -> StoreUnavailable:
        store = open_store(path, writer_process=False, report_cube=True)
        await store.open()
        try:
            with pytest.raises(StoreUnavailable) as behind:
                await store.catch_up_reports(0.0)  # one round of the build, then behind
            await store.catch_up_reports()  # the rest of the build
            return behind.value
        finally:
            await store.close()

    behind = _run(go())
    assert behind.reason is FaultReason.REBUILDING and "read so far" in str(behind)


@pytest.mark.skipif(os.geteuid() != 0, reason="a full disk is made as root (mount a tmpfs)")
def test_a_full_disk_under_the_child_comes_back_as_disk_full(tmp_path: Path) -> None:
    """The child's round cannot write the rollup's file: the store's caller gets
    ``StoreUnavailable`` ``disk_full`` (classified in the child), and once there is room the
    same child catches up."""
    with tmpfs(tmp_path / "disk", "8m") as disk:
        path = str(disk / "x.db")
        space = _run(_seed(path))

        async def go() -> tuple[StoreUnavailable, int, int]:
            store = open_store(path, writer_process=False, report_cube=True)
            await store.open()
            try:
                await store.catch_up_reports()
                pid = store._rollup_child.pid if store._rollup_child else None
                for n in range(20):  # new events for the next round to write
                    await store.record_event(event(space, "contact", f"n{n}", at=T0 + H))
                filler = fill(disk)
                with pytest.raises(StoreUnavailable) as full:
                    await store.catch_up_reports()
                filler.unlink()
                fed = await store.catch_up_reports()
                assert store._rollup_child is not None and store._rollup_child.pid == pid
                return full.value, fed, store._rollup_child.started
            finally:
                await store.close()

        full, fed, started = _run(go())
    assert full.reason is FaultReason.DISK_FULL, full
    assert "report rollup failed" in str(full)
    assert (fed, started) == (20, 1)


def test_a_rollup_process_that_died_fails_its_call_and_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    space = _run(_seed(path))

    async def go() -> tuple[int, int, StoreUnavailable, int, int]:
        store = open_store(path, writer_process=False, report_cube=True)
        await store.open()
        try:
            await store.catch_up_reports()
            child = store._rollup_child
            assert child is not None and child.pid is not None
            first = child.pid
            os.kill(first, signal.SIGKILL)
            assert _gone(first)
            with pytest.raises(StoreUnavailable) as died:
                await store.catch_up_reports()
            await store.catch_up_reports()  # a new child
            assert child.pid is not None
            groups = await store.group_counts(space, BY_CAMPAIGN)
            return first, child.pid, died.value, child.started, len(groups)
        finally:
            await store.close()

    first, second, died, started, groups = _run(go())
    assert second != first and started == 2
    assert died.reason is FaultReason.IO_ERROR and "rollup's process stopped" in str(died)
    assert groups == 2
    assert _gone(second)


def test_the_child_ignores_the_terminal_s_signals_and_ends_with_its_pipe(tmp_path: Path) -> None:
    """SIGINT and SIGTERM are the server's to handle; the child ends when its pipe closes."""
    path = str(tmp_path / "x.db")
    _run(_seed(path))
    child = RollupProcess(path, cube=False, nice=0)
    try:
        assert child.call("catch_up", 100, None, False) == EVENTS
        assert child.pid is not None
        pid = child.pid
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        assert child.call("catch_up", 100, None, False) == 0  # still there, caught up
        assert child.pid == pid
        with pytest.raises(LookupError):
            child.call("drop_everything")
    finally:
        child.close()
    assert _gone(pid)


def test_a_killed_server_leaves_no_rollup_process(start_server: ServerFactory) -> None:
    srv = start_server("--no-worker")
    assert srv.proc is not None
    space = srv.new_space()
    with srv.client() as http:  # a report: the store starts its rollup process
        r = http.get(
            f"/admin/spaces/{space.id}/reports/funnel",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert r.status_code == 200, r.text
    (child,) = _rollup_children(srv.proc.pid)
    srv.proc.kill()
    srv.proc.wait(timeout=HANG_S)
    assert _gone(child)


def test_what_the_rollup_says_reaches_the_server_s_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A rollup built without the cube, opened with it on: the child's warning (the cube is
    built from the clicks) is on the stderr it shares with the server, marked as its own."""
    path = str(tmp_path / "x.db")
    _run(_seed(path))
    plain = RollupProcess(path, cube=False, nice=0)  # a rollup without the cube
    try:
        plain.call("catch_up", 100, None, False)
    finally:
        plain.close()
    child = RollupProcess(path, cube=True, nice=0)
    try:
        assert child.call("catch_up", 100, None, False) == 0  # the steps kept
    finally:
        child.close()
    err = capfd.readouterr().err
    assert "WARNING:  (report rollup) the report rollup" in err, err
    assert "building the cube again from the clicks" in err


@pytest.mark.parametrize("in_process", [False, True], ids=["thread", "process"])
def test_the_background_catch_up_goes_in_short_rounds_with_a_pause_between_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_process: bool
) -> None:
    """Housekeeping's catch-up (``background=True``) reads ``BACKGROUND_CHUNK`` clicks and
    events a round and sleeps ``ROUND_PAUSE_S`` after each round that leaves more, so that the
    writer can start its WAL over between them (a round holds a snapshot of the main file); a
    report's catch-up never pauses. The same rollup either way. On a thread the pauses are
    counted; in the child (which takes the module's values as it starts) only the result."""
    from xtracker_server.store.sqlite import rollup

    path = str(tmp_path / "x.db")
    space = _run(_seed(path))
    monkeypatch.setattr(rollup, "BACKGROUND_CHUNK", 1)
    monkeypatch.setattr(rollup, "ROUND_PAUSE_S", 0.001)
    pauses: list[float] = []
    real_sleep = time.sleep

    def sleep(s: float) -> None:
        pauses.append(s)
        real_sleep(s)

    async def build(background: bool) -> tuple[int, object, object]:
        store = open_store(path, writer_process=False, report_cube=True,
                           rollup_process=in_process)  # fmt: skip
        await store.open()
        try:
            fed = await store.catch_up_reports(background=background)
            groups = sorted(await store.group_counts(space, BY_CAMPAIGN), key=_key)
            return fed, groups, await store.funnel_counts(space, WINDOW, mode=FunnelMode.COHORT)
        finally:
            await store.close()

    if not in_process:  # the parent's own waits for the child would be counted too
        monkeypatch.setattr(rollup.time, "sleep", sleep)
    paced = _run(build(True))
    background_pauses = list(pauses)
    os.remove(reports_path(path))
    pauses.clear()
    at_once = _run(build(False))
    assert paced == at_once and paced[0] == EVENTS
    if not in_process:  # a click or an event a round: a pause after all rounds but the last
        assert len(background_pauses) >= EVENTS - 1
        assert set(background_pauses) == {0.001}
        assert pauses == []  # a report's catch-up: no pause
