"""The test servers: the in-process server's settings are those its flags give ``xtracker
serve``; a real one finds a port."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.conftest import TLS_VERIFY, Server
from tests.inprocess import settings_of


def test_flags_and_switches_become_the_settings_serve_builds(tmp_path: Path) -> None:
    args = ("--retry-base-s", "0.2", "--no-worker", "--allow-private-destinations",
            "--trusted-proxies", "127.0.0.1", "--sync", "normal")  # fmt: skip
    settings = settings_of(tmp_path / "x.db", 4321, args, {"XTRACKER_METRICS_PUBLIC": "on"})
    assert (settings.retry_base_s, settings.worker, settings.allow_private_destinations) == (
        0.2, False, True
    )  # fmt: skip
    assert (settings.trusted_proxies, settings.sync, settings.metrics_public) == (
        ("127.0.0.1",), "NORMAL", True
    )  # fmt: skip
    assert (settings.db, settings.port) == (str(tmp_path / "x.db"), 4321)


@pytest.mark.parametrize("args", [("--no-such-flag", "1"), ("--retry-base-s",), ("stray",)])
def test_what_is_not_a_flag_of_a_setting_fails(tmp_path: Path, args: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        settings_of(tmp_path / "x.db", 4321, args, {})


def test_a_real_server_whose_port_was_taken_meanwhile_starts_on_another(tmp_path: Path) -> None:
    """``free_port`` only says a port was free: a test running at the same time (another
    pytest-xdist worker) may take it before ``xtracker serve`` binds it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Its writer on a thread and no delivery worker: each start (the refused one too, as
        # uvicorn binds after the app's start-up) would otherwise start two more processes.
        server = Server(
            db=tmp_path / "x.db",
            port=port,
            extra_args=("--no-worker",),
            env={"XTRACKER_WRITER_PROCESS": "off"},
        )
        try:
            server.start()
            assert server.port != port
            assert (
                httpx.get(f"{server.url}/healthz", verify=TLS_VERIFY, timeout=10).status_code == 200
            )
        finally:
            server.stop()
