"""``xtracker worker`` on its own, killed with SIGKILL in the middle of deliveries: after a
restart every event arrives, and a duplicate is only ever a redelivery with the same event_id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ServerFactory
from tests.e2e.test_delivery import add_webhook, deliveries, deposit, settled
from tests.sink import Reply, Sink

EVENTS = 40


def start_worker(db: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "XTRACKER_ALLOW_PRIVATE_DESTINATIONS": "on",
        "XTRACKER_RETRY_BASE_S": "0.2",
        "XTRACKER_RETRY_CAP_S": "1",
        "XTRACKER_DELIVERY_TIMEOUT_S": "0.5",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "xtracker_server", "worker", "--db", str(db), "--poll-s", "0.1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def test_sigkill_of_the_worker_mid_delivery_loses_nothing(
    start_app: ServerFactory, sink: Sink, tmp_path: Path
) -> None:
    server = start_app("--no-worker", "--rate-limit", "0")  # the worker is the process here
    space = server.new_space()
    add_webhook(server, space, f"{sink.url}/hook")
    sink.default = Reply(200, delay_s=0.15)  # slow enough to be caught mid-delivery
    with server.client() as http:
        for i in range(EVENTS):
            deposit(http, space, f"u{i}", f"tx-{i}")
    event_ids = {row["event_id"] for row in deliveries(server)}
    assert len(event_ids) == EVENTS

    log = tmp_path / "worker.log"
    worker = start_worker(server.db, log)
    try:
        sink.wait_for(10)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        killed_at = len(sink.received)
        assert killed_at < EVENTS, "the kill came too late to test anything"
        worker = start_worker(server.db, log)
        assert len(settled(server, EVENTS, "sent", timeout=60)) == EVENTS, log.read_text()
    finally:
        worker.kill()
        worker.wait(timeout=30)
    got = [r.headers["webhook-id"] for r in sink.received]
    assert set(got) == event_ids  # every event arrived, and nothing that is not one of them
    assert len(got) >= EVENTS  # redeliveries allowed, always under the same event_id
