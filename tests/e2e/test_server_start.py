"""The suite's own ``Server`` (tests/conftest.py): a ``serve`` process whose port another
test's server took first (free_port() looks, then lets go) starts on another port, and is
only taken for started once it is the one answering."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import TLS_VERIFY, AppServer, Server
from tests.databases import migrated


def test_a_server_whose_port_was_taken_starts_on_another(tmp_path: Path) -> None:
    squatter = AppServer(db=migrated(tmp_path / "squatter.db"))
    squatter.start()  # answers /healthz on the port the next server is given
    # no writer or delivery worker process: two processes' start-up, not this test's subject
    server = Server(db=tmp_path / "xtracker.db", port=squatter.port, extra_args=("--no-worker",),
                    env={"XTRACKER_WRITER_PROCESS": "off"})  # fmt: skip
    try:
        server.start()
        assert server.port != squatter.port
        assert server.proc is not None and server.proc.poll() is None
        assert "address already in use" in server.log_text()
        r = httpx.get(f"{server.url}/healthz", timeout=10, verify=TLS_VERIFY)
        assert r.status_code == 200
    finally:
        server.stop()
        squatter.stop()
