"""Shared fixtures: a real ``xtracker serve`` process on a free port with a real SQLite file,
and the real ``xtracker`` CLI against the same file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ADMIN_TOKEN = "xt_admin_test-operator-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(db: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real ``xtracker`` command, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "xtracker_server", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XTRACKER_DB": ""},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"xtracker {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
    return proc


@dataclass
class SpaceKeys:
    id: int
    name: str
    bearer: str
    ingest_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bearer}"}


@dataclass
class Server:
    db: Path
    port: int
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.log is None:  # a test may put it elsewhere (off a file system it fills up)
            self.log = self.db.with_suffix(f".{self.port}.log")
        env = {**os.environ, "XTRACKER_ADMIN_TOKEN": ADMIN_TOKEN, **self.env}
        env.pop("XTRACKER_DB", None)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "xtracker_server",
                    "serve",
                    "--db",
                    str(self.db),
                    "--port",
                    str(self.port),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)  # the port is not open yet: there is no event to await
        raise AssertionError(f"server not ready in {timeout}s: {self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.db, *args, check=check)

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def new_space(self, name: str = "demo") -> SpaceKeys:
        data = self.cli_json("space", "create", name)
        return SpaceKeys(**data)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


ServerFactory = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with custom flags; each is stopped at the end of the test."""
    started: list[Server] = []

    def start(*extra_args: str, db: Path | None = None, **env: str) -> Server:
        server = Server(
            db=db or tmp_path / "xtracker.db", port=free_port(), extra_args=extra_args, env=env
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per test module (fresh database), started once to keep the suite fast."""
    server = Server(db=tmp_path_factory.mktemp("srv") / "xtracker.db", port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def space(server: Server) -> SpaceKeys:
    return server.new_space("space-a")


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def sink() -> Iterator[Any]:
    from tests.sink import Sink

    s = Sink()
    yield s
    s.close()


FAST_RETRY = (
    "--allow-private-destinations",
    "--retry-base-s",
    "0.2",
    "--retry-cap-s",
    "1",
    "--rate-limit",
    "0",
)
