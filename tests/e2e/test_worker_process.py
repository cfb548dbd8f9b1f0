"""``xtracker serve``'s delivery worker in a process of its own (XTRACKER_WORKER_PROCESS,
delivery/process.py and delivery/child.py): the real app with the setting on, a real local
sink. What only a process shows: the child and its delivery figures on the server's /metrics,
its replacement after it dies, its end with a stopped or killed server. The app runs in this
process (the worker process is its child, as it is ``serve``'s) except where the server itself
is killed: that takes a real ``xtracker serve``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, TLS_VERIFY, AppServer, Server, ServerFactory, SpaceKeys
from tests.databases import migrated
from tests.sink import Sink
from xtracker_server.delivery.child import RELAY_S

ARGS = ("--allow-private-destinations", "--rate-limit", "0")
CHILD = "xtracker_server.delivery.child"
#: The in-process app's worker in a process of its own, as ``serve`` runs it (the tests' apps
#: run it in the app otherwise: tests/conftest.py).
WORKER_PROCESS = {"XTRACKER_WORKER_PROCESS": "on"}


def children(pid: int, running: str) -> list[int]:
    """The children of ``pid`` whose command line names ``running``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z" and running.encode() in argv:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that leave it running (each in a space and sink of its own):
    the app in this process, its delivery worker a child process of this one."""
    db = migrated(tmp_path_factory.mktemp("worker-process") / "xtracker.db")
    server = AppServer(db=db, extra_args=ARGS, env=WORKER_PROCESS)
    server.start()
    yield server
    server.stop()


def hooked_space(server: Server, sink: Sink) -> SpaceKeys:
    space = server.new_space(f"s{sink.port}")
    server.cli("destination", "add", "--space", str(space.id), "--kind", "webhook",
               "--url", f"{sink.url}/hook", "--allow-private-destinations")  # fmt: skip
    return space


def post(server: Server, space: SpaceKeys, eid: str) -> None:
    with server.client() as http:
        r = http.post("/events", json={"uid": "u1", "event": "contact", "eid": eid},
                      headers=space.auth)  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "queued", r.text


def eids(sink: Sink, count: int) -> list[str]:
    return sorted(r.json()["eid"] for r in sink.wait_for(count, timeout=30))


def sample(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                     timeout=10, verify=TLS_VERIFY).text  # fmt: skip
    found = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(found[0]) if found else 0.0


def settled(server: Server, *names: str) -> tuple[float, ...]:
    """The figures once no relay is on its way: the same across more than ``RELAY_S``. Another
    test of the module (run first under xdist's worksteal) may have had a delivery made whose
    figures the child has not relayed yet."""
    now = tuple(sample(server, name) for name in names)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(RELAY_S + 0.2)
        again = tuple(sample(server, name) for name in names)
        if again == now:
            return now
        now = again
    raise AssertionError(f"the delivery figures never settled: {now}")


def test_serve_delivers_through_a_worker_process_of_its_own_counted_on_its_metrics(
    served: Server, sink: Sink
) -> None:
    assert len(children(os.getpid(), CHILD)) == 1
    sent = 'xtracker_deliveries_total{kind="webhook",outcome="sent"}'
    timed = 'xtracker_delivery_request_seconds_count{kind="webhook"}'
    before = settled(served, sent, timed)
    space = hooked_space(served, sink)
    for i in range(3):
        post(served, space, f"e{i}")
    assert eids(sink, 3) == ["e0", "e1", "e2"]
    deadline = time.monotonic() + 30  # the child relays its figures twice a second
    while sample(served, sent) < before[0] + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (sample(served, sent), sample(served, timed)) == (before[0] + 3, before[1] + 3)


def test_a_dead_worker_process_is_replaced_and_delivery_goes_on(served: Server, sink: Sink) -> None:
    server = served
    space = hooked_space(server, sink)
    post(server, space, "before")
    assert eids(sink, 1) == ["before"]
    (worker,) = children(os.getpid(), CHILD)
    os.kill(worker, signal.SIGKILL)
    post(server, space, "after")  # committed while no worker runs: sent by the next one
    assert eids(sink, 2) == ["after", "before"]
    (new,) = children(os.getpid(), CHILD)
    assert new != worker
    assert "a new delivery worker process runs (restart 1)" in server.log_text()


def test_a_stopped_or_killed_server_leaves_no_worker_process(
    start_app: ServerFactory, start_server: ServerFactory, tmp_path: Path
) -> None:
    others = set(children(os.getpid(), CHILD))  # the module's server's, if it runs
    stopped = start_app(*ARGS, db=tmp_path / "stopped.db", **WORKER_PROCESS)
    (worker,) = set(children(os.getpid(), CHILD)) - others
    stopped.stop()
    assert not alive(worker)  # a server that stops takes its worker with it
    server = start_server(*ARGS)  # a process: killed below
    assert server.proc is not None
    (worker,) = children(server.proc.pid, CHILD)
    server.proc.kill()
    server.proc.wait(timeout=15)
    deadline = time.monotonic() + 30  # its input ends: it stops as on SIGTERM
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker)


def test_with_no_worker_process_the_server_delivers_in_its_own(
    start_app: ServerFactory, sink: Sink
) -> None:
    others = set(children(os.getpid(), CHILD))  # the module's server's, if it runs
    server = start_app(*ARGS, "--no-worker-process", **WORKER_PROCESS)  # the flag wins
    space = hooked_space(server, sink)
    post(server, space, "e1")
    assert eids(sink, 1) == ["e1"]
    assert set(children(os.getpid(), CHILD)) == others  # none of its own: it sent e1 itself
